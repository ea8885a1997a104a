//go:build !linux

package index

// readAhead does nothing here (see readahead_linux.go).
func readAhead(path string, most int64) {}
