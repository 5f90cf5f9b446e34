// Package deploy holds no code: it is the directory of the deploy files
// (the container image, the compose stack, the Kubernetes manifests, the
// Prometheus configuration and alerts, the Grafana dashboard), and its
// tests check them without a container engine, so that what ships in
// deploy/ starts: promtool on the Prometheus files and their rule unit
// tests, the dashboard's queries parsed, the manifests decoded strictly
// into the Kubernetes API types, the compose file loaded by the
// compose-spec loader, and a router started as compose starts it, against
// the test harness's PostgreSQL, answering 200 on /readyz.
package deploy
