//go:build !linux

package backup

import "os"

// fsHandle: without syncfs(2), each copied file is fsynced as it is
// written (perFile), and sync has nothing left to do.
type fsHandle struct{}

func openFS(string) (*fsHandle, error) { return &fsHandle{}, nil }
func (*fsHandle) perFile() bool        { return true }
func (*fsHandle) sync() error          { return nil }
func (*fsHandle) close() error         { return nil }

// linker makes hard links (see sys_linux.go).
type linker struct{}

func newLinker() *linker                           { return &linker{} }
func (*linker) link(oldname, newname string) error { return os.Link(oldname, newname) }
func (*linker) close()                             {}
