// Package compose holds no code: the directory is Pyrite on a real cluster for users with
// Docker (docker-compose.yml, prometheus.yml, the Grafana dashboard; see README.md). Its
// tests keep those files honest in `go test ./...` with no tool installed: compose-go (docker
// compose's own loader) validates the compose file, Prometheus's config loader the
// Prometheus file and its PromQL parser the dashboard's queries, and every metric the dashboard queries must be one
// the programs export (they are run in process against an embedded Kafka and scraped) and
// every metric they export must be in README.md's table.
package compose
