package imapsync_test

// A model-based randomized test of two-way sync against a real Dovecot.
//
// The model holds, per folder, the messages (identified by Message-ID) with
// their flags and keywords in three copies: base (the last state both sides
// agreed on, i.e. after the last sync), local and server (each side's
// current state: base plus that side's pending changes). Each round applies
// random operations to a real side and to the matching copy, runs
// imapsync.Sync, computes the expected merged state from the three copies by
// the documented rules, and checks that both real sides hold exactly it:
//
//   - per flag and keyword, a change on one side only wins; the same change
//     on both sides agrees (a boolean flag can only be changed one way);
//   - a message deleted on one side and untouched on the other is deleted;
//   - a message deleted on one side and changed (flags or keywords) on the
//     other is kept, with the other side's flags;
//   - new messages on either side appear on both;
//   - a move is a delete in one folder plus an add in the other (same
//     content, same Message-ID); a copy is an add;
//   - folders (TestModelFolders) follow the same three-way rule: created on
//     one side appears on both, deleted (empty) on one side and untouched on
//     the other is deleted, renamed is the old folder deleted and a new one
//     created with the same messages.
//
// Operations whose outcome the rules leave undefined are not generated:
//
//   - No operation on the other side (or again on the same side) touches a
//     message that was moved or copied this round, and a message is moved
//     or copied only when the other side has not touched it this round: a
//     move plus a delete, flag change or move of the same message on the
//     other side has no single defined outcome (a follower of moves would
//     carry the change along; "delete + add" would keep a second copy in
//     the old folder), and a copy plus a delete of the original on the same
//     side is a move.
//   - A local move or copy only takes a message with no keywords in any
//     copy of the model: a file moved by a mail program cannot carry the
//     keywords (they live in the index only), while a sync that recognizes
//     the move could. A move or copy goes only to a folder where no copy of
//     the model has that Message-ID (the model holds one message per
//     Message-ID and folder).
//   - No \Deleted (T) flag changes: the sync treats \Deleted as its own
//     expunge marker, not as an ordinary flag.
//   - Folder operations (TestModelFolders): a folder renamed or deleted on
//     one side is touched by nothing else in the round, on either side
//     (changes inside a folder renamed on the other side have no defined
//     home, nor have messages added to a folder deleted on the other side);
//     a rename takes the subfolders along and needs the whole subtree
//     untouched this round; a folder is deleted only when it is empty on
//     the side that deletes it and has no subfolders; INBOX is never renamed
//     or deleted; a name is reused only when no copy of the model has it.
//
// Messages are partly corpus messages (varied sizes and MIME structure) and
// partly "tiny" ones that all have the same size, so that identity by size
// is exercised. Local changes are made the way mail programs make them:
// rename in cur/ for flags, unlink to delete, new files in new/ or cur/
// without a ,U= tag, rename into another folder's directory (name, ,U= tag
// and all) to move, a new file under the same name (as cp does) or a new
// one to copy; local keyword changes go through the index (as the local
// IMAP endpoint would), since Maildir file names cannot carry them.
//
// Defaults: 3 seeds of 6 rounds of 15 operations (-short: 1 seed, 3 rounds).
// Soak with POSTFACH_MODEL_SEEDS=N (seeds 1..N), POSTFACH_MODEL_ROUNDS and
// POSTFACH_MODEL_OPS. A failure prints the operations on the messages it
// names and the command that replays it (go test -run 'TestModel/seed=N$').

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/mirrortest"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/maildir"
	"github.com/postfach/postfach/sync/imapsync"
)

// The flags and keywords random operations toggle.
var (
	modelFlags    = []maildir.Flags{maildir.FlagSeen, maildir.FlagAnswered, maildir.FlagFlagged, maildir.FlagDraft, maildir.FlagPassed}
	modelKeywords = []string{"$L1", "$L2", "$L3"}
	modelFolders  = []string{"INBOX", "Archive", "Lists/Go"}
)

// mstate is one message's flags in one copy of the model.
type mstate struct {
	flags maildir.Flags
	kw    string // keywords, sorted, space-separated
}

func (s mstate) String() string {
	out := s.flags.Info()[2:]
	if s.kw != "" {
		out += "+" + strings.ReplaceAll(s.kw, " ", "+")
	}
	if out == "" {
		return "-"
	}
	return out
}

func kwString(kw []string) string {
	k := slices.Clone(kw)
	slices.Sort(k)
	k = slices.Compact(k)
	return strings.Join(k, " ")
}

func (s mstate) hasKeyword(k string) bool { return slices.Contains(strings.Fields(s.kw), k) }

func (s mstate) toggleKeyword(k string) mstate {
	kw := strings.Fields(s.kw)
	if i := slices.Index(kw, k); i >= 0 {
		kw = slices.Delete(kw, i, i+1)
	} else {
		kw = append(kw, k)
	}
	s.kw = kwString(kw)
	return s
}

// merge3 is the documented per-flag rule, written out flag by flag.
func merge3(b, l, s mstate) mstate {
	var out mstate
	for f := maildir.Flags(1); f != 0 && f <= maildir.FlagPassed; f <<= 1 {
		v := l.flags&f != 0
		if (s.flags&f != 0) != (b.flags&f != 0) {
			v = s.flags&f != 0
		}
		if v {
			out.flags |= f
		}
	}
	var kw []string
	for _, k := range strings.Fields(b.kw + " " + l.kw + " " + s.kw) {
		v := l.hasKeyword(k)
		if s.hasKeyword(k) != b.hasKeyword(k) {
			v = s.hasKeyword(k)
		}
		if v {
			kw = append(kw, k)
		}
	}
	out.kw = kwString(kw)
	return out
}

// mside is one copy of the model: folder -> Message-ID -> state. A folder
// with no messages is present with an empty map.
type mside map[string]map[string]mstate

func (s mside) clone() mside {
	out := make(mside, len(s))
	for f, msgs := range s {
		m := make(map[string]mstate, len(msgs))
		for id, st := range msgs {
			m[id] = st
		}
		out[f] = m
	}
	return out
}

func (s mside) count() int {
	n := 0
	for _, m := range s {
		n += len(m)
	}
	return n
}

type mmodel struct {
	base, local, server mside
}

// expected merges the three copies by the rules in the file comment.
func (m *mmodel) expected() (mside, error) {
	out := mside{}
	folders := map[string]bool{}
	for _, s := range []mside{m.base, m.local, m.server} {
		for f := range s {
			folders[f] = true
		}
	}
	for f := range folders {
		b, inB := m.base[f]
		l, inL := m.local[f]
		s, inS := m.server[f]
		keepFolder := inL && inS || !inB && (inL || inS)
		ids := map[string]bool{}
		for _, mm := range []map[string]mstate{b, l, s} {
			for id := range mm {
				ids[id] = true
			}
		}
		msgs := map[string]mstate{}
		for id := range ids {
			bs, inBM := b[id]
			ls, inLM := l[id]
			ss, inSM := s[id]
			switch {
			case inLM && inSM && inBM:
				msgs[id] = merge3(bs, ls, ss)
			case inLM && inSM:
				return nil, fmt.Errorf("model: %s in %s is new on both sides", id, f)
			case inLM && !(inBM && ls == bs):
				msgs[id] = ls
			case inSM && !(inBM && ss == bs):
				msgs[id] = ss
			}
		}
		if keepFolder {
			out[f] = msgs
		} else if len(msgs) > 0 {
			return nil, fmt.Errorf("model: folder %s is deleted but keeps messages %v", f, msgs)
		}
	}
	return out, nil
}

// modelRun is one seed's run.
type modelRun struct {
	t         *testing.T
	e         *env
	seed      int64
	rng       *rand.Rand
	m         *mmodel
	raw       map[string][]byte // Message-ID -> content, LF line ends
	c         *imapclient.Client
	folderOps bool
	next      int      // message counter
	nextName  int      // folder name counter
	usedNames []string // top-level folder names created so far
	round     int
	ops       []string // every operation so far, for the failure report
	replay    string   // how to run this again

	lfiles map[string]map[string]string   // folder -> Message-ID -> file path, as last seen
	suids  map[string]map[string]imap.UID // folder -> Message-ID -> UID, this round

	// This round's bookkeeping of what was touched.
	moved              map[string]bool // Message-IDs moved on either side
	touchedL, touchedS map[string]bool // Message-IDs changed on each side
	folderL, folderS   map[string]bool // folders with any change on each side
	frozen             map[string]bool // folders renamed, deleted or created by a rename
}

func modelEnvInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// modelParams returns seeds, rounds and operations per round.
func modelParams() (seeds, rounds, ops int) {
	seeds, rounds, ops = 3, 6, 15
	if testing.Short() {
		seeds, rounds = 1, 3
	}
	return modelEnvInt("POSTFACH_MODEL_SEEDS", seeds), modelEnvInt("POSTFACH_MODEL_ROUNDS", rounds), modelEnvInt("POSTFACH_MODEL_OPS", ops)
}

// TestModel runs random message operations (flags, keywords, add, delete,
// move between existing folders) on both sides against the model.
func TestModel(t *testing.T) {
	seeds, rounds, ops := modelParams()
	first := int64(modelEnvInt("POSTFACH_MODEL_FIRST_SEED", 1))
	for seed := first; seed < first+int64(seeds); seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			runModel(t, seed, rounds, ops, false)
		})
	}
}

// TestModelFolders adds folder operations (with CreateFolders and
// RemoveFolders): create a folder with messages (top-level, below another
// folder, or below a parent that is no folder; sometimes reusing the name
// of a folder gone since), rename a folder with its subfolders, delete an
// empty folder, on either side.
func TestModelFolders(t *testing.T) {
	seeds, rounds, ops := modelParams()
	first := int64(modelEnvInt("POSTFACH_MODEL_FIRST_SEED", 1))
	for seed := first; seed < first+int64(seeds); seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			runModel(t, seed, rounds, ops, true)
		})
	}
}

func runModel(t *testing.T, seed int64, rounds, ops int, folderOps bool) {
	start := time.Now()
	e := newEnv(t)
	// Odd seeds upload with one APPEND each, even ones with MULTIAPPEND.
	e.opts = func(o *imapsync.Options) {
		o.CreateFolders, o.RemoveFolders = folderOps, folderOps
		o.NoMultiAppend = seed%2 == 1
	}
	r := newModelRun(t, e, seed)
	r.folderOps = folderOps
	name := "TestModel"
	if folderOps {
		name = "TestModelFolders"
	}
	var env []string
	for _, v := range []string{"POSTFACH_MODEL_ROUNDS", "POSTFACH_MODEL_OPS"} {
		if os.Getenv(v) != "" {
			env = append(env, v+"="+os.Getenv(v))
		}
	}
	if seed > 1 { // so that the subtest exists, whatever the default
		env = append(env, fmt.Sprintf("POSTFACH_MODEL_SEEDS=%d", seed))
	}
	r.replay = strings.TrimSpace(strings.Join(env, " ") + fmt.Sprintf(" go test -run '%s/seed=%d$' ./sync/imapsync", name, seed))

	// Round 0: a server with a corpus, a local INBOX with a few files
	// written before the first sync.
	r.beginRound()
	for _, f := range modelFolders {
		r.m.base[f], r.m.local[f], r.m.server[f] = map[string]mstate{}, map[string]mstate{}, map[string]mstate{}
	}
	var seedMsgs []corpus.Message
	for i, cm := range corpus.Generate(seed, 24, corpus.Options{Folders: modelFolders}) {
		if i%4 == 3 {
			cm.Raw = tinyMessage(seed, 1000+i, &cm.MessageID)
		}
		seedMsgs = append(seedMsgs, cm)
		st := mstate{}
		st.flags, st.kw = stateOf(cm.Flags)
		r.m.server[cm.Folder][cm.MessageID] = st
		r.raw[cm.MessageID] = lf(cm.Raw)
	}
	e.d.Seed(t, testenv.DefaultUser.Name, seedMsgs)
	r.mkdirLocal("INBOX")
	for range 3 {
		r.localAdd("INBOX")
	}
	r.syncAndCheck()

	for r.round = 1; r.round <= rounds; r.round++ {
		r.beginRound()
		for range ops {
			r.randomOp()
		}
		r.syncAndCheck()
	}
	if testing.Verbose() {
		for _, op := range r.ops {
			t.Log(op)
		}
	}
	t.Logf("seed %d: %d rounds, %d operations, %d messages at the end, %v",
		seed, rounds, len(r.ops), r.m.base.count(), time.Since(start).Round(time.Millisecond))
}

func newModelRun(t *testing.T, e *env, seed int64) *modelRun {
	return &modelRun{
		t: t, e: e, seed: seed,
		rng:    rand.New(rand.NewPCG(uint64(seed), 0x6d6f64656c)),
		raw:    map[string][]byte{},
		m:      &mmodel{base: mside{}, local: mside{}, server: mside{}},
		c:      e.d.Client(t, testenv.DefaultUser.Name),
		lfiles: map[string]map[string]string{},
	}
}

func (r *modelRun) beginRound() {
	r.suids = map[string]map[string]imap.UID{}
	r.moved, r.touchedL, r.touchedS = map[string]bool{}, map[string]bool{}, map[string]bool{}
	r.folderL, r.folderS, r.frozen = map[string]bool{}, map[string]bool{}, map[string]bool{}
}

func (r *modelRun) logf(format string, args ...any) {
	r.ops = append(r.ops, fmt.Sprintf("round %d: ", r.round)+fmt.Sprintf(format, args...))
}

// fail reports a failure with everything needed to replay it: the
// operations on the messages it names, and the last operations.
func (r *modelRun) fail(format string, args ...any) {
	r.t.Helper()
	msg := fmt.Sprintf(format, args...)
	var related []string
	ids := map[string]bool{}
	for _, id := range modelIDRE.FindAllString(msg, -1) {
		ids[id] = true
	}
	for _, op := range r.ops {
		for _, id := range modelIDRE.FindAllString(op, -1) {
			if ids[id] {
				related = append(related, op)
				break
			}
		}
	}
	if len(related) > 100 {
		related = related[:100]
	}
	ops := r.ops
	if len(ops) > 60 {
		ops = ops[len(ops)-60:]
	}
	r.t.Fatalf("seed %d, round %d: %s\n\noperations on these messages:\n  %s\n\nlast operations:\n  %s\n\nreplay: %s",
		r.seed, r.round, msg, strings.Join(related, "\n  "), strings.Join(ops, "\n  "), r.replay)
}

// modelIDRE matches the Message-IDs the model uses.
var modelIDRE = regexp.MustCompile(`[0-9a-z.-]+@(?:corpus\.postfach|model)\.test`)

func (r *modelRun) check(err error) {
	r.t.Helper()
	if err != nil {
		r.fail("%v", err)
	}
}

func lf(raw []byte) []byte { return bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n")) }

func crlf(raw []byte) []byte { return bytes.ReplaceAll(lf(raw), []byte("\n"), []byte("\r\n")) }

// tinyMessage returns a message that has the same size as every other tiny
// message, setting *id to its Message-ID. LF line ends.
func tinyMessage(seed int64, n int, id *string) []byte {
	*id = fmt.Sprintf("tiny-%04d-%06d@model.test", seed%10000, n)
	return []byte("From: robot@example.org\nTo: me@example.org\nSubject: notification\n" +
		"Message-ID: <" + *id + ">\n\nSomething happened.\n")
}

func stateOf(flags []imap.Flag) (maildir.Flags, string) {
	f, kw := maildir.FlagsFromIMAP(flags)
	return f, kwString(kw)
}

// newMessage returns a fresh message (LF line ends) and its Message-ID.
func (r *modelRun) newMessage() (string, []byte) {
	r.next++
	var id string
	var raw []byte
	if r.rng.IntN(3) == 0 {
		raw = tinyMessage(r.seed, r.next, &id)
	} else {
		cm := corpus.At(r.seed+1_000_000, r.next, corpus.Options{})
		id, raw = cm.MessageID, lf(cm.Raw)
	}
	r.raw[id] = raw
	return id, raw
}

func (r *modelRun) randomFlags() maildir.Flags {
	var f maildir.Flags
	for _, x := range modelFlags {
		if r.rng.IntN(4) == 0 {
			f |= x
		}
	}
	return f
}

// ---- the real local side ----

func (r *modelRun) folderPath(folder string) string {
	p, err := maildir.FolderDir(r.e.root, "acct", folder)
	r.check(err)
	return p
}

func (r *modelRun) mkdirLocal(folder string) {
	for _, sub := range []string{"cur", "new", "tmp"} {
		r.check(os.MkdirAll(filepath.Join(r.folderPath(folder), sub), 0o700))
	}
}

// localFile finds the file holding Message-ID id in folder by reading the
// files, as a mail program would.
func (r *modelRun) localFile(folder, id string) string {
	if p, ok := r.lfiles[folder][id]; ok {
		if _, err := os.Stat(p); err == nil {
			return p // file names are unique: still the same message
		}
	}
	dir := r.folderPath(folder)
	files := map[string]string{}
	for _, sub := range []string{"cur", "new"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		r.check(err)
		for _, de := range ents {
			p := filepath.Join(dir, sub, de.Name())
			files[messageIDOf(p)] = p
		}
	}
	r.lfiles[folder] = files
	if p, ok := files[id]; ok {
		return p
	}
	r.fail("local file of %s not found in %s", id, folder)
	return ""
}

func (r *modelRun) setFile(folder, id, path string) {
	if r.lfiles[folder] == nil {
		r.lfiles[folder] = map[string]string{}
	}
	r.lfiles[folder][id] = path
}

func messageIDOf(path string) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return index.ParseHeader(raw).MessageID
}

func (r *modelRun) localAdd(folder string) {
	id, raw := r.newMessage()
	dir := r.folderPath(folder)
	key := fmt.Sprintf("%d.M%dP%d.modeltest", 1772445600+r.next, r.next, r.seed)
	st := mstate{}
	var p string
	if r.rng.IntN(2) == 0 {
		p = filepath.Join(dir, "new", key) // as an MDA delivers
	} else {
		st.flags = r.randomFlags() // as a mail program saves a copy
		p = filepath.Join(dir, "cur", key+":"+st.flags.Info())
	}
	r.check(os.WriteFile(p, raw, 0o600))
	r.setFile(folder, id, p)
	r.m.local[folder][id] = st
	r.touchedL[id], r.folderL[folder] = true, true
	r.logf("local add %s to %s (%s) as %s", id, folder, st, filepath.Base(filepath.Dir(p)))
}

func (r *modelRun) localFlag(folder, id string, flag maildir.Flags) {
	p := r.localFile(folder, id)
	st := r.m.local[folder][id]
	st.flags ^= flag
	name := filepath.Base(p)
	if i := strings.IndexByte(name, ':'); i >= 0 {
		name = name[:i]
	}
	np := filepath.Join(r.folderPath(folder), "cur", name+":"+st.flags.Info())
	r.check(os.Rename(p, np))
	r.setFile(folder, id, np)
	r.logf("local flags of %s in %s: %s -> %s (rename %s)", id, folder, r.m.local[folder][id], st, filepath.Base(np))
	r.m.local[folder][id] = st
	r.touchedL[id], r.folderL[folder] = true, true
}

func (r *modelRun) localKeyword(folder, id, kw string) {
	st := r.m.local[folder][id].toggleKeyword(kw)
	err := r.e.store.Write(context.Background(), func(tx *index.Tx) error {
		a, err := tx.Account("acct")
		if err != nil {
			return err
		}
		f, err := tx.FolderByName(a, folder)
		if err != nil {
			return err
		}
		rows, err := tx.Messages(f.ID)
		if err != nil {
			return err
		}
		for _, m := range rows {
			if m.Header.MessageID == id {
				return tx.SetFlags(m.ID, f.ID, m.Flags, strings.Fields(st.kw))
			}
		}
		return fmt.Errorf("no index row for %s in %s", id, folder)
	})
	r.check(err)
	r.logf("local keywords of %s in %s: %s -> %s (index)", id, folder, r.m.local[folder][id], st)
	r.m.local[folder][id] = st
	r.touchedL[id], r.folderL[folder] = true, true
}

func (r *modelRun) localDelete(folder, id string) {
	r.check(os.Remove(r.localFile(folder, id)))
	delete(r.m.local[folder], id)
	r.touchedL[id], r.folderL[folder] = true, true
	r.logf("local delete %s from %s", id, folder)
}

func (r *modelRun) localMove(from, to, id string) {
	p := r.localFile(from, id)
	np := filepath.Join(r.folderPath(to), filepath.Base(filepath.Dir(p)), filepath.Base(p))
	r.check(os.Rename(p, np))
	r.setFile(to, id, np)
	st := r.m.local[from][id]
	delete(r.m.local[from], id)
	r.m.local[to][id] = st
	r.moved[id], r.touchedL[id] = true, true
	r.folderL[from], r.folderL[to] = true, true
	r.logf("local move %s from %s to %s (file %s)", id, from, to, filepath.Base(p))
}

// localCopy copies a file into another folder: under the same name (as cp
// does, ,U= tag and all) or under a new one (as a mail program does).
func (r *modelRun) localCopy(from, to, id string, sameName bool) {
	p := r.localFile(from, id)
	raw, err := os.ReadFile(p)
	r.check(err)
	name := filepath.Base(p)
	if !sameName {
		r.next++
		_, info, ok := strings.Cut(name, ":")
		name = fmt.Sprintf("%d.M%dP%d.modelcopy", 1772445600+r.next, r.next, r.seed)
		if ok {
			name += ":" + info
		}
	}
	np := filepath.Join(r.folderPath(to), filepath.Base(filepath.Dir(p)), name)
	r.check(os.WriteFile(np, raw, 0o600))
	r.setFile(to, id, np)
	r.m.local[to][id] = mstate{flags: r.m.local[from][id].flags}
	r.moved[id], r.touchedL[id] = true, true
	r.folderL[from], r.folderL[to] = true, true
	r.logf("local copy %s from %s to %s (file %s as %s)", id, from, to, filepath.Base(p), name)
}

// ---- the real server side ----

func (r *modelRun) selectServer(folder string) {
	_, err := r.c.Select(folder, nil).Wait()
	r.check(err)
}

// serverUID returns the UID of Message-ID id in folder (selecting it).
func (r *modelRun) serverUID(folder, id string) imap.UID {
	r.selectServer(folder)
	if uid, ok := r.suids[folder][id]; ok {
		return uid
	}
	uids := map[string]imap.UID{}
	r.suids[folder] = uids
	section := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Message-ID"}, Peek: true}
	msgs, err := r.c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	r.check(err)
	for _, m := range msgs {
		uids[index.ParseHeader(m.FindBodySection(section)).MessageID] = m.UID
	}
	if uid, ok := uids[id]; ok {
		return uid
	}
	r.fail("server copy of %s not found in %s", id, folder)
	return 0
}

func (r *modelRun) serverAppend(folder string) {
	id, raw := r.newMessage()
	st := mstate{flags: r.randomFlags()}
	flags := st.flags.IMAP()
	for _, k := range modelKeywords {
		if r.rng.IntN(5) == 0 {
			st = st.toggleKeyword(k)
			flags = append(flags, imap.Flag(k))
		}
	}
	data := crlf(raw)
	cmd := r.c.Append(folder, int64(len(data)), &imap.AppendOptions{Flags: flags})
	_, werr := cmd.Write(data)
	cerr := cmd.Close()
	_, err := cmd.Wait()
	for _, e := range []error{werr, cerr, err} {
		r.check(e)
	}
	delete(r.suids, folder)
	r.m.server[folder][id] = st
	r.touchedS[id], r.folderS[folder] = true, true
	r.logf("server append %s to %s (%s)", id, folder, st)
}

// serverToggle toggles one flag (flag != 0) or keyword (kw != "").
func (r *modelRun) serverToggle(folder, id string, flag maildir.Flags, kw string) {
	uid := r.serverUID(folder, id)
	old := r.m.server[folder][id]
	st := old
	var f imap.Flag
	var set bool
	if flag != 0 {
		st.flags ^= flag
		f, set = flag.IMAP()[0], st.flags&flag != 0
	} else {
		st = st.toggleKeyword(kw)
		f, set = imap.Flag(kw), st.hasKeyword(kw)
	}
	op := imap.StoreFlagsDel
	if set {
		op = imap.StoreFlagsAdd
	}
	r.check(r.c.Store(imap.UIDSetNum(uid), &imap.StoreFlags{Op: op, Silent: true, Flags: []imap.Flag{f}}, nil).Close())
	r.m.server[folder][id] = st
	r.touchedS[id], r.folderS[folder] = true, true
	r.logf("server flags of %s in %s (uid %d): %s -> %s (STORE)", id, folder, uid, old, st)
}

func (r *modelRun) serverDelete(folder, id string) {
	uid := r.serverUID(folder, id)
	set := imap.UIDSetNum(uid)
	r.check(r.c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close())
	r.check(r.c.UIDExpunge(set).Close())
	delete(r.suids[folder], id)
	delete(r.m.server[folder], id)
	r.touchedS[id], r.folderS[folder] = true, true
	r.logf("server delete %s from %s (uid %d)", id, folder, uid)
}

func (r *modelRun) serverMove(from, to, id string) {
	uid := r.serverUID(from, id)
	_, err := r.c.Move(imap.UIDSetNum(uid), to).Wait()
	r.check(err)
	delete(r.suids[from], id)
	delete(r.suids, to)
	st := r.m.server[from][id]
	delete(r.m.server[from], id)
	r.m.server[to][id] = st
	r.moved[id], r.touchedS[id] = true, true
	r.folderS[from], r.folderS[to] = true, true
	r.logf("server move %s from %s to %s (uid %d)", id, from, to, uid)
}

func (r *modelRun) serverCopy(from, to, id string) {
	uid := r.serverUID(from, id)
	_, err := r.c.Copy(imap.UIDSetNum(uid), to).Wait()
	r.check(err)
	delete(r.suids, to)
	r.m.server[to][id] = r.m.server[from][id]
	r.moved[id], r.touchedS[id] = true, true
	r.folderS[from], r.folderS[to] = true, true
	r.logf("server copy %s from %s to %s (uid %d)", id, from, to, uid)
}

// ---- folder operations ----

// newFolderName returns a name no copy of the model has: usually a fresh
// top-level one; sometimes (nested) a subfolder of an open folder of the
// side or of a parent that is no folder; sometimes a top-level name used
// before and gone since. parent is the open folder it is created in, if any.
func (r *modelRun) newFolderName(side mside, nested bool) (name, parent string) {
	free := func(n string) bool {
		_, inB := r.m.base[n]
		_, inL := r.m.local[n]
		_, inS := r.m.server[n]
		return !inB && !inL && !inS && !r.frozen[n]
	}
	switch r.rng.IntN(6) {
	case 0:
		var old []string
		for _, n := range r.usedNames {
			if free(n) && !slices.Contains(old, n) {
				old = append(old, n)
			}
		}
		if len(old) > 0 {
			return pick(r.rng, old), ""
		}
	case 1:
		if nested {
			var parents []string
			for _, f := range r.openFolders(side) {
				if f != "INBOX" {
					parents = append(parents, f)
				}
			}
			if len(parents) > 0 {
				r.nextName++
				parent = pick(r.rng, parents)
				return fmt.Sprintf("%s/F%d", parent, r.nextName), parent
			}
		}
	case 2:
		if nested {
			r.nextName++
			return fmt.Sprintf("N%d/F%d", r.nextName, r.nextName), ""
		}
	}
	r.nextName++
	name = fmt.Sprintf("F%d", r.nextName)
	r.usedNames = append(r.usedNames, name)
	return name, ""
}

func (r *modelRun) localCreateFolder() {
	name, parent := r.newFolderName(r.m.local, true)
	r.mkdirLocal(name)
	r.m.local[name] = map[string]mstate{}
	r.folderL[name] = true
	if parent != "" {
		r.folderL[parent] = true
	}
	r.logf("local create folder %s", name)
	for range r.rng.IntN(4) {
		r.localAdd(name)
	}
}

func (r *modelRun) serverCreateFolder() {
	name, parent := r.newFolderName(r.m.server, true)
	r.check(r.c.Create(name, nil).Wait())
	r.m.server[name] = map[string]mstate{}
	r.folderS[name] = true
	if parent != "" {
		r.folderS[parent] = true
	}
	r.logf("server create folder %s", name)
	for range r.rng.IntN(4) {
		r.serverAppend(name)
	}
}

// subtree returns f and the folders below it in s.
func subtree(s mside, f string) []string {
	var out []string
	for _, g := range sortedKeys(s) {
		if g == f || strings.HasPrefix(g, f+"/") {
			out = append(out, g)
		}
	}
	return out
}

// renameModel renames folder from (and the folders below it) to to in s,
// freezing the old and the new names.
func (r *modelRun) renameModel(s mside, from, to string) {
	for _, g := range subtree(s, from) {
		ng := to + strings.TrimPrefix(g, from)
		s[ng] = s[g]
		delete(s, g)
		r.frozen[g], r.frozen[ng] = true, true
	}
}

func (r *modelRun) localRenameFolder(from string) {
	to, _ := r.newFolderName(r.m.local, false)
	r.check(os.Rename(r.folderPath(from), r.folderPath(to)))
	r.renameModel(r.m.local, from, to)
	r.logf("local rename folder %s to %s", from, to)
}

func (r *modelRun) serverRenameFolder(from string) {
	to, _ := r.newFolderName(r.m.server, false)
	r.c.Unselect().Wait() // nothing selected is fine too
	r.check(r.c.Rename(from, to, nil).Wait())
	r.suids = map[string]map[string]imap.UID{}
	r.renameModel(r.m.server, from, to)
	r.logf("server rename folder %s to %s", from, to)
}

func (r *modelRun) localDeleteFolder(folder string) {
	r.check(os.RemoveAll(r.folderPath(folder)))
	delete(r.m.local, folder)
	r.frozen[folder] = true
	r.logf("local delete empty folder %s", folder)
}

func (r *modelRun) serverDeleteFolder(folder string) {
	r.c.Unselect().Wait()
	r.check(r.c.Delete(folder).Wait())
	delete(r.m.server, folder)
	r.frozen[folder] = true
	r.logf("server delete empty folder %s", folder)
}

// ---- choosing operations ----

type mcand struct{ folder, id string }

// candidates lists the messages of a side that an operation of the given
// kind ("change", "delete", "move" or "copy") may touch this round.
func (r *modelRun) candidates(local bool, kind string) []mcand {
	side, other := r.m.server, r.touchedL
	if local {
		side, other = r.m.local, r.touchedS
	}
	var out []mcand
	for _, f := range sortedKeys(side) {
		if r.frozen[f] {
			continue
		}
		for _, id := range sortedKeys(side[f]) {
			if r.moved[id] {
				continue
			}
			if (kind == "move" || kind == "copy") && (other[id] || local && r.anyKeywords(id)) {
				continue
			}
			out = append(out, mcand{f, id})
		}
	}
	return out
}

// anyKeywords reports whether id has keywords in any copy of the model.
func (r *modelRun) anyKeywords(id string) bool {
	for _, s := range []mside{r.m.base, r.m.local, r.m.server} {
		for _, msgs := range s {
			if st, ok := msgs[id]; ok && st.kw != "" {
				return true
			}
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// openFolders lists the folders of a side that may take changes this round.
func (r *modelRun) openFolders(side mside) []string {
	var out []string
	for _, f := range sortedKeys(side) {
		if !r.frozen[f] {
			out = append(out, f)
		}
	}
	return out
}

// renamable lists the folders a side may rename (with the folders below
// them) or, forDelete, delete (empty ones without subfolders): not INBOX,
// the same subtree in all three copies, untouched this round on both sides.
func (r *modelRun) renamable(side mside, forDelete bool) []string {
	var out []string
next:
	for _, f := range r.openFolders(side) {
		if f == "INBOX" {
			continue
		}
		sub := subtree(r.m.base, f)
		if len(sub) == 0 || forDelete && (len(sub) > 1 || len(side[f]) > 0) {
			continue
		}
		if !slices.Equal(sub, subtree(r.m.local, f)) || !slices.Equal(sub, subtree(r.m.server, f)) {
			continue
		}
		for _, g := range sub {
			if r.folderL[g] || r.folderS[g] || r.frozen[g] {
				continue next
			}
		}
		out = append(out, f)
	}
	return out
}

// destinations lists the folders of a side a message may be moved or
// copied to: open, and without that Message-ID in any copy of the model
// (the model holds one message per Message-ID and folder).
func (r *modelRun) destinations(side mside, c mcand) []string {
	var out []string
	for _, f := range r.openFolders(side) {
		_, inB := r.m.base[f][c.id]
		_, inL := r.m.local[f][c.id]
		_, inS := r.m.server[f][c.id]
		if f != c.folder && !inB && !inL && !inS {
			out = append(out, f)
		}
	}
	return out
}

func pick[T any](rng *rand.Rand, s []T) T { return s[rng.IntN(len(s))] }

// randomOp applies one random operation that the rules allow; it tries a
// few kinds until one has a candidate.
func (r *modelRun) randomOp() {
	type op struct {
		weight int
		do     func() bool // false: no candidate
	}
	msgOp := func(local bool, kind string, fn func(c mcand)) func() bool {
		return func() bool {
			cs := r.candidates(local, kind)
			if len(cs) == 0 {
				return false
			}
			fn(pick(r.rng, cs))
			return true
		}
	}
	moveOp := func(side mside, local bool) func() bool {
		return msgOp(local, "move", func(c mcand) {
			dests := r.destinations(side, c)
			if len(dests) == 0 {
				return
			}
			if local {
				r.localMove(c.folder, pick(r.rng, dests), c.id)
			} else {
				r.serverMove(c.folder, pick(r.rng, dests), c.id)
			}
		})
	}
	copyOp := func(local bool) func() bool {
		side := r.m.server
		if local {
			side = r.m.local
		}
		return msgOp(local, "copy", func(c mcand) {
			dests := r.destinations(side, c)
			if len(dests) == 0 {
				return
			}
			if local {
				r.localCopy(c.folder, pick(r.rng, dests), c.id, r.rng.IntN(2) == 0)
			} else {
				r.serverCopy(c.folder, pick(r.rng, dests), c.id)
			}
		})
	}
	ops := []op{
		{8, msgOp(true, "change", func(c mcand) { r.localFlag(c.folder, c.id, pick(r.rng, modelFlags)) })},
		{3, func() bool {
			// Keywords locally need the message's index row: only messages
			// in the base at the same place.
			var cs []mcand
			for _, c := range r.candidates(true, "change") {
				if _, ok := r.m.base[c.folder][c.id]; ok {
					cs = append(cs, c)
				}
			}
			if len(cs) == 0 {
				return false
			}
			c := pick(r.rng, cs)
			r.localKeyword(c.folder, c.id, pick(r.rng, modelKeywords))
			return true
		}},
		{4, func() bool {
			fs := r.openFolders(r.m.local)
			if len(fs) == 0 {
				return false
			}
			r.localAdd(pick(r.rng, fs))
			return true
		}},
		{4, msgOp(true, "delete", func(c mcand) { r.localDelete(c.folder, c.id) })},
		{3, moveOp(r.m.local, true)},
		{8, msgOp(false, "change", func(c mcand) { r.serverToggle(c.folder, c.id, pick(r.rng, modelFlags), "") })},
		{3, msgOp(false, "change", func(c mcand) { r.serverToggle(c.folder, c.id, 0, pick(r.rng, modelKeywords)) })},
		{4, func() bool {
			fs := r.openFolders(r.m.server)
			if len(fs) == 0 {
				return false
			}
			r.serverAppend(pick(r.rng, fs))
			return true
		}},
		{4, msgOp(false, "delete", func(c mcand) { r.serverDelete(c.folder, c.id) })},
		{3, moveOp(r.m.server, false)},
		{2, copyOp(true)},
		{2, copyOp(false)},
	}
	if r.folderOps {
		folderOp := func(side mside, forDelete bool, fn func(f string)) func() bool {
			return func() bool {
				fs := r.renamable(side, forDelete)
				if len(fs) == 0 {
					return false
				}
				fn(pick(r.rng, fs))
				return true
			}
		}
		ops = append(ops,
			op{2, func() bool { r.localCreateFolder(); return true }},
			op{2, func() bool { r.serverCreateFolder(); return true }},
			op{2, folderOp(r.m.local, false, r.localRenameFolder)},
			op{2, folderOp(r.m.server, false, r.serverRenameFolder)},
			op{2, folderOp(r.m.local, true, r.localDeleteFolder)},
			op{2, folderOp(r.m.server, true, r.serverDeleteFolder)},
		)
	}
	total := 0
	for _, o := range ops {
		total += o.weight
	}
	for range 20 {
		n := r.rng.IntN(total)
		for _, o := range ops {
			if n < o.weight {
				if o.do() {
					return
				}
				break
			}
			n -= o.weight
		}
	}
}

// ---- sync and check ----

func (r *modelRun) syncAndCheck() {
	r.t.Helper()
	want, err := r.m.expected()
	r.check(err)
	res, _, err := r.e.trySync(true)
	if err != nil {
		r.fail("sync: %v", err)
	}
	r.logf("sync: %s", totalsString(res))
	r.verify(want)

	// A second run finds nothing to do.
	res, _, err = r.e.trySync(true)
	if err != nil {
		r.fail("second sync: %v", err)
	}
	if tot := res.Totals(); tot.New+tot.Uploaded+tot.ExpungedRemote+tot.Expunged+tot.FlagsChanged+tot.FlagsPushed+tot.Rebuilt != 0 {
		r.fail("a second sync right after the first did something: %s", totalsString(res))
	}
	r.verify(want)
	r.m.base, r.m.local, r.m.server = want, want.clone(), want.clone()
}

func totalsString(res *imapsync.Result) string {
	if res == nil {
		return "no result"
	}
	t := res.Totals()
	return fmt.Sprintf("new=%d uploaded=%d expungedRemote=%d expunged=%d flagsChanged=%d flagsPushed=%d rebuilt=%d",
		t.New, t.Uploaded, t.ExpungedRemote, t.Expunged, t.FlagsChanged, t.FlagsPushed, t.Rebuilt)
}

// verify checks both real sides against want, and the mirror invariant.
func (r *modelRun) verify(want mside) {
	r.t.Helper()
	server, err := mirrortest.ServerFolders(r.c)
	r.check(err)
	var problems []string
	srv, p := r.serverSide(server)
	problems = append(problems, p...)
	problems = append(problems, diffSides("server", want, srv)...)
	loc, p := r.localSide()
	problems = append(problems, p...)
	problems = append(problems, diffSides("local", want, loc)...)
	for _, d := range mirrortest.Compare(context.Background(), server, r.e.root, "acct", r.e.store) {
		problems = append(problems, "mirror: "+d)
	}
	if len(problems) > 0 {
		if len(problems) > 40 {
			problems = append(problems[:40], fmt.Sprintf("... and %d more", len(problems)-40))
		}
		r.fail("after sync:\n  %s", strings.Join(problems, "\n  "))
	}
}

func (r *modelRun) serverSide(server map[string][]mirrortest.ServerMessage) (mside, []string) {
	var problems []string
	out := mside{}
	for f, msgs := range server {
		out[f] = map[string]mstate{}
		for _, m := range msgs {
			id := index.ParseHeader(m.Raw).MessageID
			if _, dup := out[f][id]; dup {
				problems = append(problems, fmt.Sprintf("server %s: %s more than once", f, id))
			}
			out[f][id] = mstate{m.Flags, kwString(m.Keywords)}
			if want, ok := r.raw[id]; ok && !bytes.Equal(lf(m.Raw), want) {
				problems = append(problems, fmt.Sprintf("server %s: content of %s (uid %d) differs", f, id, m.UID))
			}
		}
	}
	return out, problems
}

func (r *modelRun) localSide() (mside, []string) {
	var problems []string
	kw := map[string]map[string]string{} // folder -> key -> keywords
	err := r.e.store.Read(context.Background(), func(tx *index.ReadTx) error {
		a, err := tx.Account("acct")
		if err != nil {
			return err
		}
		folders, err := tx.Folders(a)
		if err != nil {
			return err
		}
		for _, f := range folders {
			rows, err := tx.Messages(f.ID)
			if err != nil {
				return err
			}
			kw[f.Name] = map[string]string{}
			for _, m := range rows {
				kw[f.Name][m.Key] = kwString(m.Keywords)
			}
		}
		return nil
	})
	r.check(err)
	out := mside{}
	err = maildir.WalkFolders(filepath.Join(r.e.root, maildir.EncodeName("acct")), func(folder string, d *maildir.Dir) error {
		out[folder] = map[string]mstate{}
		es, err := d.Scan()
		if err != nil {
			return err
		}
		for _, e := range es {
			raw, err := os.ReadFile(d.FilePath(e))
			if err != nil {
				return err
			}
			id := index.ParseHeader(raw).MessageID
			if _, dup := out[folder][id]; dup {
				problems = append(problems, fmt.Sprintf("local %s: %s more than once", folder, id))
			}
			out[folder][id] = mstate{e.Flags, kw[folder][e.Key]}
			if want, ok := r.raw[id]; ok && !bytes.Equal(raw, want) {
				problems = append(problems, fmt.Sprintf("local %s: content of %s (%s) differs", folder, id, e.Name))
			}
		}
		return nil
	})
	r.check(err)
	return out, problems
}

// diffSides lists how got differs from want.
func diffSides(side string, want, got mside) []string {
	var out []string
	folders := map[string]bool{}
	for f := range want {
		folders[f] = true
	}
	for f := range got {
		folders[f] = true
	}
	for _, f := range sortedKeys(folders) {
		w, inW := want[f]
		g, inG := got[f]
		switch {
		case !inG:
			out = append(out, fmt.Sprintf("%s: folder %s missing (want %d messages)", side, f, len(w)))
			continue
		case !inW:
			out = append(out, fmt.Sprintf("%s: folder %s should not exist (has %d messages)", side, f, len(g)))
			continue
		}
		ids := map[string]bool{}
		for id := range w {
			ids[id] = true
		}
		for id := range g {
			ids[id] = true
		}
		for _, id := range sortedKeys(ids) {
			ws, inW := w[id]
			gs, inG := g[id]
			switch {
			case !inG:
				out = append(out, fmt.Sprintf("%s: %s: %s missing (want flags %s)", side, f, id, ws))
			case !inW:
				out = append(out, fmt.Sprintf("%s: %s: %s should not be there (flags %s)", side, f, id, gs))
			case ws != gs:
				out = append(out, fmt.Sprintf("%s: %s: %s has flags %s, want %s", side, f, id, gs, ws))
			}
		}
	}
	return out
}

// BenchmarkModelSoak is the long form of TestModel and TestModelFolders:
// each iteration runs both over 10 more seeds (8 rounds of 25 operations)
// against a fresh Dovecot, in a child process of this test binary, e.g.
//
//	go test -run '^$' -bench ModelSoak -benchtime 5x ./sync/imapsync
func BenchmarkModelSoak(b *testing.B) {
	for i := 0; i < b.N; i++ {
		cmd := exec.Command(os.Args[0], "-test.run=^(TestModel|TestModelFolders)$", "-test.count=1")
		cmd.Env = append(os.Environ(), "POSTFACH_MODEL_SEEDS=10", "POSTFACH_MODEL_ROUNDS=8", "POSTFACH_MODEL_OPS=25",
			fmt.Sprintf("POSTFACH_MODEL_FIRST_SEED=%d", 1000+10*i))
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("soak iteration %d: %v\n%s", i, err, out)
		}
	}
}
