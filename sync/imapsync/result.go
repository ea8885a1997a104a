package imapsync

import (
	"fmt"
	"strings"
)

// Progress receives progress reports; calls come from several goroutines.
type Progress interface {
	// Expect adds messages (and bytes, when known) to the expected total.
	Expect(msgs int, bytes int64)
	// Done reports messages stored.
	Done(msgs int, bytes int64)
}

type noProgress struct{}

func (noProgress) Expect(int, int64) {}
func (noProgress) Done(int, int64)   {}

// Result summarizes a run.
type Result struct {
	DryRun  bool // the counts are what a real run would do
	Partial bool // only Options.Only was synced, without the folder-level pass
	Folders []FolderResult
	// FolderActions lists folder-level changes (renames, creations,
	// deletions), one line each, carried out or (DryRun) planned.
	FolderActions []string
	Moved         int // messages moved between folders upstream, as they were locally

	// Recovered lists the local folders removed because they were deleted
	// upstream that held messages with no copy upstream (never uploaded,
	// or changed here since the last sync): those were moved to another
	// local folder, which the next run syncs like any new local folder.
	Recovered []Recovery
}

// Recovery is one removed folder's messages kept in another local folder.
type Recovery struct {
	From, To string // local folder names
	Messages int
}

// FolderResult is what one folder's sync did.
type FolderResult struct {
	Name           string
	New            int    // messages downloaded
	Bytes          int64  // bytes downloaded
	FlagsChanged   int    // messages whose flags changed locally
	FlagsPushed    int    // messages whose flags were changed upstream
	Uploaded       int    // local messages APPENDed upstream
	ExpungedRemote int    // messages deleted upstream because they were deleted locally
	Expunged       int    // messages removed locally because they left the server
	Archived       int    // messages moved to the archive view (Options.Archive) instead
	Rebuilt        int    // index rows rebuilt from files already on disk
	Refused        int    // local messages the server would not store (tried again next run)
	RefusedWhy     string // the server's answer to the first of them
	// TooLarge counts the messages left where they are because they are
	// larger than MaxSize (either side), TooLargeBytes their sizes.
	TooLarge      int
	TooLargeBytes int64
	Skipped       bool // unchanged since the last run: not even selected
	Err           error
	Actions       []Action // the messages behind the counts, one each (actions.go)
}

// Note says, in one line, what the folder's run left undone without
// failing (messages the server refused, messages larger than MaxSize), or
// "" when nothing. It is recorded as the folder's last error until a run
// leaves nothing undone, so that status shows it.
func (f *FolderResult) Note() string {
	var parts []string
	if f.Refused > 0 {
		s := fmt.Sprintf("%d %s refused by the server (kept here, tried again next run)", f.Refused, plural(f.Refused, "message", "messages"))
		if f.RefusedWhy != "" {
			s += ": " + f.RefusedWhy
		}
		parts = append(parts, s)
	}
	if f.TooLarge > 0 {
		parts = append(parts, fmt.Sprintf("%d %s larger than max_size not copied (%d bytes)",
			f.TooLarge, plural(f.TooLarge, "message", "messages"), f.TooLargeBytes))
	}
	return strings.Join(parts, "; ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// Totals adds up the folder results.
func (r *Result) Totals() (fr FolderResult) {
	for _, f := range r.Folders {
		fr.New += f.New
		fr.Bytes += f.Bytes
		fr.FlagsChanged += f.FlagsChanged
		fr.FlagsPushed += f.FlagsPushed
		fr.Uploaded += f.Uploaded
		fr.ExpungedRemote += f.ExpungedRemote
		fr.Expunged += f.Expunged
		fr.Archived += f.Archived
		fr.Rebuilt += f.Rebuilt
		fr.Refused += f.Refused
		fr.TooLarge += f.TooLarge
		fr.TooLargeBytes += f.TooLargeBytes
	}
	return fr
}
