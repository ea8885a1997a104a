//go:build !linux

package backup

import (
	"errors"
	"os"
)

// fsHandle: without syncfs(2), each copied file is fsynced as it is
// written (perFile), and sync has nothing left to do.
type fsHandle struct{}

func openFS(string) (*fsHandle, error) { return &fsHandle{}, nil }
func (*fsHandle) perFile() bool        { return true }
func (*fsHandle) sync() error          { return nil }
func (*fsHandle) close() error         { return nil }

// fsFree: unknown here (Materialize does not check before unpacking).
func fsFree(string) (uint64, error) { return 0, errors.ErrUnsupported }

// linker makes hard links (see sys_linux.go).
type linker struct{}

func newLinker() *linker                           { return &linker{} }
func (*linker) link(oldname, newname string) error { return os.Link(oldname, newname) }
func (*linker) close()                             {}
