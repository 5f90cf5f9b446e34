package move

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// leavesSQL lists the tables that hold the rows of table $1: the table
// itself when it is not partitioned, otherwise its leaf partitions
// (pg_partition_tree lists nothing for a table that is not partitioned).
const leavesSQL = `
	SELECT c.oid::regclass::text FROM pg_class c WHERE c.oid = $1::regclass AND c.relkind = 'r'
	UNION ALL
	SELECT t.relid::regclass::text FROM pg_partition_tree($1::regclass) t WHERE t.isleaf
	ORDER BY 1`

// VacuumAnalyze vacuums and analyzes tables as autovacuum would: each
// table, or each leaf partition of a partitioned one, that holds rows.
// It leaves alone the empty ones and the partitioned tables themselves.
//
// Why not VACUUM (ANALYZE) of each table: an empty table or partition
// that is vacuumed or analyzed is recorded empty (pg_class.reltuples 0,
// where a table never counted has -1), and the planner then takes it for
// one row until autovacuum analyzes it again (after 50 changed rows, at
// its next visit). The month partitions created ahead of time are empty,
// and the generic plans a connection builds once while a month's
// partition is recorded empty (the batch's, every presence read's) read
// it by a sequential scan or any index for every market day long after
// it fills: batches of 10,000 rows grew from 0.5 to 18 s in
// BENCHMARKS.md, "The batch statement looks rows up by key". A partition
// never counted is planned as ten pages of rows, which keeps its index
// scans. A region move's target holds every month partition of the
// schema, and a VACUUM (ANALYZE) of vendor_presences after the copy
// recorded each empty one, the months ahead among them, as empty.
//
// The partitioned tables' own statistics (over all their partitions) are
// left as they were: PostgreSQL before 18 (ANALYZE ONLY) collects them
// only by analyzing every partition too, empty ones included, and
// autovacuum never collects them.
func VacuumAnalyze(ctx context.Context, conn *pgx.Conn, tables []string) error {
	for _, table := range tables {
		rows, _ := conn.Query(ctx, leavesSQL, table)
		leaves, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("list the partitions of %s: %w", table, err)
		}
		for _, leaf := range leaves {
			var holds bool
			if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM "+leaf+")").Scan(&holds); err != nil {
				return fmt.Errorf("look into %s: %w", leaf, err)
			}
			if !holds {
				continue
			}
			if _, err := conn.Exec(ctx, "VACUUM (ANALYZE) "+leaf); err != nil {
				return fmt.Errorf("vacuum %s: %w", leaf, err)
			}
		}
	}
	return nil
}
