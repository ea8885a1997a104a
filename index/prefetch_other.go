//go:build !linux

package index

// Prefetch does nothing where the kernel cannot be asked to read the
// file ahead (see prefetch_linux.go).
func (s *Store) Prefetch() {}
