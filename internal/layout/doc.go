// Package layout holds no code: its test checks the dependency rule of
// docs/contributing.md against what the packages really import, so the rule
// and the code cannot drift apart.
//
// The rule, from the bottom up: regions and taxcode import nothing of the
// module; shardmap, migrations and auth only regions; registry and jobs add
// shardmap (registry also migrations, for the partition names); control
// (the control database) adds shardmap and migrations; national adds auth
// and registry; router adds national, control and taxcode; config composes
// the settings of auth, control, jobs, national and shardmap; internal/cli
// wires them for both binaries; cmd/dmsrouter ships, and the dev tools (cmd/dmsdev, seed,
// bench, internal/pgcluster, pgtest) are never imported by it. Each
// third-party library stays in its room: gin and Prometheus in router,
// viper in config, gobreaker in shardmap, the JWT library in auth, goose in
// migrations.
package layout
