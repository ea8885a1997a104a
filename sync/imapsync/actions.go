package imapsync

import (
	"cmp"
	"slices"
	"strings"

	"github.com/postfach/postfach/index"
)

// Action is one message a run changed or, with DryRun, would change: the
// plan of a dry run as a list, so that it can be held to what the real run
// then does (the counts of FolderResult add these up, more or less: an
// Action is recorded where its count is).
type Action struct {
	Op     string // one of the Op constants
	Folder string // local folder name
	// UID is the server UID; 0 for an upload (the server gives it).
	UID uint32
	// Key is the Maildir key; "" for a download (the file is made then).
	Key string
	// Flags is, for OpFlagsLocal, the new local flags and keywords
	// ("2,FS $Label1"); for OpFlagsServer, the STORE ("+\Seen -$Label1": each flag
	// added or removed, see flagDiff).
	Flags string
}

// The operations of an Action.
const (
	OpDownload     = "download"      // a server message fetched into a new file
	OpUpload       = "upload"        // a local message APPENDed upstream
	OpFlagsLocal   = "flags-local"   // a file's flags or a row's keywords changed to the merge's
	OpFlagsServer  = "flags-server"  // a server message's flags changed by STORE
	OpDeleteLocal  = "delete-local"  // a file and its row removed: the server message is gone
	OpDeleteServer = "delete-server" // a server message expunged: the file is gone
	OpReindex      = "reindex"       // a file found on disk indexed again
	OpArchive      = "archive"       // a message moved to the archive view (Options.Archive)
)

// record adds actions to the folder's result.
func (j *folderJob) record(acts ...Action) {
	if len(acts) == 0 || j.s.opts.NoActions {
		return
	}
	j.update(func(r *FolderResult) {
		for _, a := range acts {
			a.Folder = j.rf.Local
			r.Actions = append(r.Actions, a)
		}
	})
}

// recordRows records op for each row, by its UID and key.
func (j *folderJob) recordRows(op string, rows []*index.Message) {
	if j.s.opts.NoActions {
		return
	}
	acts := make([]Action, len(rows))
	for i, m := range rows {
		acts[i] = Action{Op: op, UID: m.UID, Key: m.Key}
	}
	j.record(acts...)
}

// recordUIDs records op for each server UID.
func (j *folderJob) recordUIDs(op string, uids []uint32) {
	if j.s.opts.NoActions {
		return
	}
	acts := make([]Action, len(uids))
	for i, u := range uids {
		acts[i] = Action{Op: op, UID: u}
	}
	j.record(acts...)
}

// Actions returns the actions of every folder, sorted by folder, operation,
// UID and key.
func (r *Result) Actions() []Action {
	var out []Action
	for _, f := range r.Folders {
		out = append(out, f.Actions...)
	}
	slices.SortFunc(out, func(a, b Action) int {
		return cmp.Or(strings.Compare(a.Folder, b.Folder), strings.Compare(a.Op, b.Op),
			cmp.Compare(a.UID, b.UID), strings.Compare(a.Key, b.Key), strings.Compare(a.Flags, b.Flags))
	})
	return out
}
