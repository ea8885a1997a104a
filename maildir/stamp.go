package maildir

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Stamp identifies the state of a Maildir folder's listing: the identity
// (device and inode) and modification time of its cur/ and new/
// directories. Every delivery, rename and removal of a file in them
// changes their modification time, so an equal stamp means an equal
// listing, provided the stamp is not Racy: a filesystem's clock is
// coarse (a tick of milliseconds, or of seconds), and a change within the
// tick of the time read can leave that time as it was. Taken twice around a read of
// the listing, equal and not racy, a stamp vouches for what was read
// until it differs; this is how a sync of a large unchanged mailbox
// reads no listing at all.
type Stamp struct {
	Cur, New stampDir
}

type stampDir struct {
	Dev, Ino uint64
	Mtime    int64 // nanoseconds since 1970
}

// racyWindow is how recent a directory time is too recent to vouch for a
// listing (see Stamp): far more than the clock tick of a filesystem that
// keeps sub-second times (Linux's are the kernel's coarse clock, a few
// milliseconds); coarseWindow is it for one that keeps whole seconds (its
// times have no fraction; FAT's tick is two seconds).
const (
	racyWindow   = 100 * time.Millisecond
	coarseWindow = 3 * time.Second
)

// Stamp returns the folder's Stamp; an error if cur/ or new/ cannot be
// read.
func (d *Dir) Stamp() (Stamp, error) {
	var s Stamp
	for _, x := range []struct {
		sub string
		to  *stampDir
	}{{"cur", &s.Cur}, {"new", &s.New}} {
		fi, err := os.Stat(filepath.Join(d.Path, x.sub))
		if err != nil {
			return Stamp{}, err
		}
		x.to.Mtime = fi.ModTime().UnixNano()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			x.to.Dev, x.to.Ino = uint64(st.Dev), uint64(st.Ino)
		}
	}
	return s, nil
}

// Racy reports whether s is too recent, as of now, to vouch for a
// listing: either directory changed within the window of its
// filesystem's clock (racyWindow, coarseWindow) of now, or after now (a
// clock set back); or the filesystem gives no inode numbers.
func (s Stamp) Racy(now time.Time) bool {
	window := racyWindow
	if s.Cur.Mtime%int64(time.Second) == 0 || s.New.Mtime%int64(time.Second) == 0 {
		window = coarseWindow
	}
	limit := now.Add(-window).UnixNano()
	return s.Cur.Mtime > limit || s.New.Mtime > limit || s.Cur.Ino == 0 || s.New.Ino == 0
}

// Newest is the later of its directories' modification times.
func (s Stamp) Newest() time.Time { return time.Unix(0, max(s.Cur.Mtime, s.New.Mtime)) }

// SameDirs reports whether s and o are of the same cur/ and new/
// (device and inode), whatever their times.
func (s Stamp) SameDirs(o Stamp) bool {
	return s.Cur.Dev == o.Cur.Dev && s.Cur.Ino == o.Cur.Ino && s.New.Dev == o.New.Dev && s.New.Ino == o.New.Ino
}

// String is the stamp in the form ParseStamp reads.
func (s Stamp) String() string {
	return fmt.Sprintf("%d:%d:%d/%d:%d:%d", s.Cur.Dev, s.Cur.Ino, s.Cur.Mtime, s.New.Dev, s.New.Ino, s.New.Mtime)
}

// ParseStamp reads a Stamp's String; ok is false for anything else.
func ParseStamp(text string) (s Stamp, ok bool) {
	n, err := fmt.Sscanf(text, "%d:%d:%d/%d:%d:%d", &s.Cur.Dev, &s.Cur.Ino, &s.Cur.Mtime, &s.New.Dev, &s.New.Ino, &s.New.Mtime)
	return s, err == nil && n == 6
}
