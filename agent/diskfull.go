package agent

import (
	"errors"
	"fmt"
	"syscall"
)

// storeFullError is a run that stopped because the store's disk is full
// (a message file or the index could not be written). Every such failure
// of an account, in however many folders, is this one line: what happened,
// where, what to do, and that nothing stored is damaged (each message is
// committed whole or not at all, and the index stays consistent).
type storeFullError struct {
	root string
	err  error
}

func (e *storeFullError) Error() string {
	reason := "no space left on device"
	if errors.Is(e.err, syscall.EDQUOT) {
		reason = "disk quota exceeded"
	}
	return fmt.Sprintf("the disk of the store %s is full (%s): free some space and run again; "+
		"what is stored is whole, and the next run goes on from there", e.root, reason)
}

func (e *storeFullError) Unwrap() error { return e.err }

// storeFull turns an error that says the store's disk is full into a
// storeFullError; other errors are returned as they are.
func storeFull(root string, err error) error {
	var sf *storeFullError
	if err == nil || errors.As(err, &sf) {
		return err
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return &storeFullError{root: root, err: err}
	}
	return err
}
