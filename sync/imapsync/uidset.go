package imapsync

import (
	"fmt"

	"github.com/emersion/go-imap/v2"
)

// UID sets a server sent (a SEARCH or ESEARCH answer, COPYUID). They are
// never expanded with go-imap's NumSet.Nums or SearchData.AllUIDs: those
// build a slice of every number of every range, so an ESEARCH answer
// "ALL 1:4294967295" (ten bytes) asks for 16 GiB, and a range ending at
// 4294967295 (a legal UID) never ends at all (the loop's counter wraps
// around). A set is counted first, range by range, and refused if it holds
// more UIDs than the caller can accept (for a SEARCH, the folder's message
// count); only then is it walked.

// uidCount returns how many UIDs set holds, counting each range without
// walking it. A set that holds "*" or 0 (not a UID; go-imap reads a 0 in a
// SEARCH answer as "*") is not a list of UIDs: ok is false.
func uidCount(set imap.UIDSet) (n uint64, ok bool) {
	for _, r := range set {
		if r.Start == 0 || r.Stop == 0 {
			return 0, false
		}
		lo, hi := uint64(r.Start), uint64(r.Stop)
		if lo > hi {
			lo, hi = hi, lo
		}
		n += hi - lo + 1
	}
	return n, true
}

// checkUIDSet returns set's size, or an error naming what when set is not
// a list of UIDs or holds far more UIDs than a folder of exists messages
// can (see searchLimit).
func checkUIDSet(set imap.UIDSet, exists uint32, what string) (uint64, error) {
	n, ok := uidCount(set)
	if !ok {
		return 0, fmt.Errorf("%s: the server's answer is not a list of UIDs (it holds * or 0)", what)
	}
	if n > searchLimit(exists) {
		return 0, fmt.Errorf("%s: the server answered with %d UIDs for a folder of %d messages: refused", what, n, exists)
	}
	return n, nil
}

// walkUIDs calls fn with each UID of set, in the order of the set, with a
// 64-bit counter (a range may end at 4294967295). The caller has checked
// the set's size (checkUIDSet).
func walkUIDs(set imap.UIDSet, fn func(uint32)) {
	for _, r := range set {
		lo, hi := uint64(r.Start), uint64(r.Stop)
		if lo > hi {
			lo, hi = hi, lo
		}
		for u := lo; u <= hi; u++ {
			fn(uint32(u))
		}
	}
}

// singleUID returns the one UID of set, or false when set holds another
// number of them (checked without walking it).
func singleUID(set imap.UIDSet) (uint32, bool) {
	if n, ok := uidCount(set); !ok || n != 1 {
		return 0, false
	}
	return uint32(set[0].Start), true
}
