//! kubeconfig (being built).
