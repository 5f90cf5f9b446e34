package seed

// SetRebuildMarketDays sets the size from which a shard's presence load
// rebuilds the indexes, so that tiny tests exercise both paths, and returns
// a function that restores it.
func SetRebuildMarketDays(n int64) (restore func()) {
	old := rebuildMarketDays
	rebuildMarketDays = n
	return func() { rebuildMarketDays = old }
}
