package index

// SetSearchManyMatches sets the number of full-text matches from which
// SearchQuery scans by date (searchManyMatches) and returns the function
// that restores it.
func SetSearchManyMatches(n int) (restore func()) {
	old := searchManyMatches.Swap(int64(n))
	return func() { searchManyMatches.Store(old) }
}
