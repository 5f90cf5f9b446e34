// Package move moves a region from one shard database to another online
// (issue 11; the DBA's guide is docs/moving-regions.md, the design
// docs/architecture.md#22): PostgreSQL logical replication copies the
// region's rows (a publication filtered to the region on the source, a
// subscription on the target), the move waits until the target has caught
// up and verifies it, freezes the region's writes on the source for under a
// second, switches the region's assignment in the control database and
// waits until every live router applied it; replication then runs in
// reverse so that a rollback loses no write, until the move is completed.
//
// Every step is recorded in the control database (control.moves) and is
// idempotent, so a move interrupted anywhere continues, or is undone, by
// running the same command again. Everything it creates in a shard
// database is named after the region and the move's id (Names).
//
// It may import control, shardmap, migrations and regions, and pgx.
package move
