//! The statements of the API's Prometheus-compatible query side (being built).
