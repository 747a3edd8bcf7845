use super::*;

#[test]
fn per_peer_limit_defaults_to_a_quarter_at_least_one() {
    for (max, per_peer, want) in [
        (1024, 0, 256),
        (64, 0, 16),
        (3, 0, 1),
        (1, 0, 1),
        (64, 5, 5),
        (64, 100, 100),
    ] {
        let c = ListenerConfig {
            max_connections: max,
            max_connections_per_peer: per_peer,
            ..ListenerConfig::default()
        };
        assert_eq!(c.per_peer_limit(), want, "{max} {per_peer}");
    }
}

#[test]
fn peer_slots_are_counted_per_address_and_given_back() {
    let counts = Arc::new(PeerCounts::default());
    let a: IpAddr = [127, 0, 0, 1].into();
    let b: IpAddr = [127, 0, 0, 2].into();
    let first = PeerCounts::enter(&counts, a, 2);
    let second = PeerCounts::enter(&counts, a, 2);
    assert!(first.is_some() && second.is_some());
    assert!(PeerCounts::enter(&counts, a, 2).is_none());
    assert!(PeerCounts::enter(&counts, b, 2).is_some());
    drop(first);
    let third = PeerCounts::enter(&counts, a, 2);
    assert!(third.is_some());
    drop((second, third));
    assert!(counts.lock().is_empty());
}
