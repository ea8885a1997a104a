package clienttest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/internal/corpus"
)

// seeded gives a fresh account of ep holding ClientCorpus.
func seeded(t *testing.T, ep Endpoint) Target {
	t.Helper()
	tg := ep(t)
	if err := Seed(tg, ClientCorpus()); err != nil {
		t.Fatal(err)
	}
	return tg
}

// inboxByUID is ClientCorpus's INBOX by UID (as seeded in order into an
// empty INBOX).
func inboxByUID() map[string]corpus.Message {
	out := map[string]corpus.Message{}
	n := 0
	for _, m := range ClientCorpus() {
		if m.Folder == "INBOX" {
			n++
			out[fmt.Sprint(n)] = m
		}
	}
	return out
}

// inboxRaw is the raw bytes of ClientCorpus's INBOX by UID (as seeded in
// order into an empty INBOX).
func inboxRaw() map[string][]byte {
	out := map[string][]byte{}
	n := 0
	for _, m := range ClientCorpus() {
		if m.Folder == "INBOX" {
			n++
			out[fmt.Sprint(n)] = m.Raw
		}
	}
	return out
}

// TestIMAPLib: imaplib sees the same on two Dovecots (after
// normalisation), gets every message byte for byte through BODY[],
// BODY[HEADER]+BODY[TEXT] and the partial, with its size and internal
// date, and is told of a message appended during IDLE; run through a
// proxy that drops the EXISTS after COPY and MOVE, it sees a difference
// there.
func TestIMAPLib(t *testing.T) {
	t.Parallel()
	broken := seeded(t, sharedEndpoint(1))
	broken.IMAP = startBreakingProxy(t, broken.IMAP, func(line, cmd string) string {
		if existsRE.MatchString(line) && copyMoveRE.MatchString(cmd) {
			return ""
		}
		return line
	}).ln.Addr().String()
	checkIMAPLib(t, seeded(t, sharedEndpoint(0)), seeded(t, sharedEndpoint(1)), &broken, nil)
}

// checkIMAPLib runs imaplib against ref and target (and broken, if not
// nil), both holding ClientCorpus, and checks what target gave against
// ref and against the seeded mail; broken must differ where the proxy
// dropped an EXISTS.
func checkIMAPLib(t *testing.T, ref, target Target, broken *Target, opts *Options) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	type res struct {
		run *IMAPLibRun
		err error
	}
	refc, brokenc := make(chan res, 1), make(chan res, 1)
	go func() { r, err := RunIMAPLib(ctx, ref); refc <- res{r, err} }()
	if broken != nil {
		go func() { r, err := RunIMAPLib(ctx, *broken); brokenc <- res{r, err} }()
	}
	got, err := RunIMAPLib(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	want := <-refc
	if want.err != nil {
		t.Fatal(want.err)
	}
	for _, r := range []*IMAPLibRun{want.run, got} {
		if r.Err != "" {
			t.Fatalf("imaplib script stopped: %s", r.Err)
		}
	}
	if broken != nil {
		bad := <-brokenc
		if bad.err != nil {
			t.Fatal(bad.err)
		}
		diffs := CompareClientSteps(want.run.Steps, bad.run.Steps, nil)
		if len(diffs) == 0 || !strings.Contains(strings.Join(diffs, "\n"), `"uid copy 3 INBOX EXISTS"`) {
			t.Errorf("the EXISTS the proxy dropped after UID COPY went unnoticed; differences:\n%s", strings.Join(diffs, "\n"))
		}
	}
	if diffs := CompareClientSteps(want.run.Steps, got.Steps, opts); len(diffs) > 0 {
		t.Errorf("imaplib saw different things on the reference and the target:\n%s", strings.Join(diffs, "\n"))
	}

	raw := inboxRaw()
	meta := got.Step("fetch (UID FLAGS INTERNALDATE RFC822.SIZE)")
	sizes, dates := meta.Items("RFC822.SIZE"), meta.Items("INTERNALDATE")
	for uid, m := range inboxByUID() {
		if string(sizes[uid]) != fmt.Sprint(len(m.Raw)) {
			t.Errorf("UID %s: RFC822.SIZE %s, want %d", uid, sizes[uid], len(m.Raw))
		}
		if d, err := time.Parse("_2-Jan-2006 15:04:05 -0700", string(dates[uid])); err != nil || !d.Equal(m.Date.Truncate(time.Second)) {
			t.Errorf("UID %s: INTERNALDATE %q, want %v", uid, dates[uid], m.Date)
		}
	}
	bodies := got.Step("fetch (UID BODY.PEEK[])").Items("BODY[]")
	heads := got.Step("fetch (UID BODY.PEEK[HEADER])").Items("BODY[HEADER]")
	texts := got.Step("fetch (UID BODY.PEEK[TEXT])").Items("BODY[TEXT]")
	parts := got.Step("fetch (UID BODY.PEEK[]<0.100>)").Items("BODY[]<0>")
	if len(bodies) != len(raw) {
		t.Errorf("BODY[] of %d messages, want %d", len(bodies), len(raw))
	}
	for uid, want := range raw {
		if !bytes.Equal(bodies[uid], want) {
			t.Errorf("UID %s: BODY[] differs from the message seeded (%d bytes, want %d)", uid, len(bodies[uid]), len(want))
		}
		if hb := append(append([]byte(nil), heads[uid]...), texts[uid]...); !bytes.Equal(hb, want) {
			t.Errorf("UID %s: BODY[HEADER] + BODY[TEXT] differ from the message seeded", uid)
		}
		if !bytes.Equal(parts[uid], want[:100]) {
			t.Errorf("UID %s: BODY[]<0.100> = %q, want %q", uid, parts[uid], want[:100])
		}
	}
	archive := got.Step("fetch Archive").Items("BODY[]")
	found := false
	for _, b := range archive {
		found = found || bytes.Equal(b, AppendedMessage())
	}
	if !found {
		t.Errorf("the message appended to Archive is not in Archive byte for byte (%d messages there)", len(archive))
	}
	if idle := strings.Join(got.Step("idle").Normal, "\n"); !strings.Contains(idle, "EXISTS") {
		t.Errorf("IDLE was not told of the appended message:\n%s", idle)
	}
}

// inboxMessages is ClientCorpus's INBOX in order.
func inboxMessages() [][]byte {
	var out [][]byte
	for _, m := range ClientCorpus() {
		if m.Folder == "INBOX" {
			out = append(out, m.Raw)
		}
	}
	return out
}

// checkUIDLs: one per message, unique, 1-70 characters 0x21-0x7E (RFC 1939).
func checkUIDLs(t *testing.T, uidls []string, n int) {
	t.Helper()
	if len(uidls) != n {
		t.Errorf("%d UIDLs, want %d", len(uidls), n)
	}
	seen := map[string]bool{}
	for _, u := range uidls {
		if u == "" || len(u) > 70 || strings.IndexFunc(u, func(r rune) bool { return r < 0x21 || r > 0x7e }) >= 0 || seen[u] {
			t.Errorf("bad or repeated UIDL %q", u)
		}
		seen[u] = true
	}
}

// TestPOP3Clients: poplib and fetchmail retrieve INBOX byte for byte from
// Dovecot's POP3; poplib sees the same CAPA, LIST and TOP on two Dovecots
// and the same UIDLs on a second login; fetchmail records one UIDL per
// message, the ones poplib saw, and fetches nothing on its second run.
func TestPOP3Clients(t *testing.T) {
	t.Parallel()
	checkPOP3Clients(t, seeded(t, sharedEndpoint(0)), seeded(t, sharedEndpoint(1)))
}

// checkPOP3Clients runs poplib and fetchmail against target (and poplib
// against ref), both holding ClientCorpus, and checks what they got.
func checkPOP3Clients(t *testing.T, ref, target Target) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	want := inboxMessages()

	refc := make(chan error, 1)
	var refRun *POP3Run
	go func() {
		var err error
		refRun, err = RunPoplib(ctx, ref)
		refc <- err
	}()
	got, err := RunPoplib(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-refc; err != nil {
		t.Fatal(err)
	}
	if got.Stat != refRun.Stat {
		t.Errorf("STAT %v, reference STAT %v", got.Stat, refRun.Stat)
	}
	for _, c := range []string{"TOP", "UIDL", "USER", "RESP-CODES", "AUTH-RESP-CODE", "SASL"} {
		if !slices.Contains(got.Capa, c) {
			t.Errorf("CAPA %v lacks %s", got.Capa, c)
		}
	}
	if len(got.Messages) != len(want) {
		t.Fatalf("poplib retrieved %d messages, want %d", len(got.Messages), len(want))
	}
	var uidls []string
	for i, m := range got.Messages {
		uidls = append(uidls, m.UIDL)
		if !bytes.Equal(m.Raw, want[i]) {
			t.Errorf("message %d: RETR differs from the message seeded (%d bytes, want %d)", m.Num, len(m.Raw), len(want[i]))
		}
		head, _, _ := bytes.Cut(want[i], []byte("\r\n\r\n"))
		if !bytes.Equal(m.Top0, append(head, "\r\n\r\n"...)) {
			t.Errorf("message %d: TOP 0 = %q, want the header and the blank line", m.Num, m.Top0)
		}
		if m.Size != len(want[i]) {
			t.Errorf("message %d: LIST size %d, want %d", m.Num, m.Size, len(want[i]))
		}
	}
	checkUIDLs(t, uidls, len(want))
	again, err := RunPoplib(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range again.Messages {
		if i < len(uidls) && m.UIDL != uidls[i] {
			t.Errorf("message %d: UIDL %q on the second login, %q on the first", m.Num, m.UIDL, uidls[i])
		}
	}

	fm, err := NewFetchmail(t.TempDir(), target)
	if err != nil {
		t.Fatal(err)
	}
	first, err := fm.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if first.ExitCode != 0 || len(first.Messages) != len(want) {
		t.Fatalf("fetchmail: exit %d, %d messages, want 0 and %d:\n%s", first.ExitCode, len(first.Messages), len(want), first.Output)
	}
	for i, m := range first.Messages {
		if !bytes.Equal(m, LF(want[i])) {
			t.Errorf("fetchmail message %d differs from the message seeded (%d bytes, want %d)", i+1, len(m), len(LF(want[i])))
		}
	}
	sorted := append([]string(nil), uidls...)
	sort.Strings(sorted)
	if strings.Join(first.UIDLs, " ") != strings.Join(sorted, " ") {
		t.Errorf("fetchmail recorded UIDLs %v, poplib saw %v", first.UIDLs, sorted)
	}
	second, err := fm.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if second.ExitCode != 1 || len(second.Messages) != len(want) {
		t.Errorf("fetchmail's second run: exit %d, %d messages in all; want 1 (no new mail) and still %d:\n%s", second.ExitCode, len(second.Messages), len(want), second.Output)
	}
}

// maildirLetters is the Maildir info of IMAP flags (keywords dropped, as
// mbsync drops them).
func maildirLetters(flags []imap.Flag) string {
	letters := map[imap.Flag]string{imap.FlagSeen: "S", imap.FlagFlagged: "F", imap.FlagAnswered: "R", imap.FlagDraft: "D", imap.FlagDeleted: "T"}
	var out []string
	for _, f := range flags {
		out = append(out, letters[f])
	}
	sort.Strings(out)
	return strings.Join(out, "")
}

func messageID(raw []byte) string {
	if m := messageIDRE.FindSubmatch(raw); m != nil {
		return string(m[1])
	}
	return ""
}

// TestMbsync: mbsync pulls every folder of the target into a fresh
// Maildir, every message byte for byte (but for its X-TUID line and line
// ends) with its flags; then a flag set in the Maildir reaches the server
// and a flag set on the server reaches the Maildir in one more sync.
func TestMbsync(t *testing.T) {
	t.Parallel()
	checkMbsync(t, seeded(t, sharedEndpoint(1)))
}

// checkMbsync mirrors target, holding ClientCorpus, with mbsync and
// checks the Maildir and the flag sync both ways.
func checkMbsync(t *testing.T, target Target) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mb, err := NewMbsync(ctx, t.TempDir(), target)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mb.Run(ctx); err != nil {
		t.Fatal(err)
	}
	folders, err := mb.Folders()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]corpusMsg{}
	for _, m := range ClientCorpus() {
		if want[m.Folder] == nil {
			want[m.Folder] = map[string]corpusMsg{}
		}
		want[m.Folder][messageID(m.Raw)] = corpusMsg{m.Raw, maildirLetters(m.Flags)}
	}
	if len(folders) != len(want) {
		t.Errorf("mbsync made folders %v, want %d folders", keys(folders), len(want))
	}
	for name, msgs := range want {
		got := folders[name]
		if len(got) != len(msgs) {
			t.Errorf("%s: %d messages, want %d", name, len(got), len(msgs))
		}
		for _, g := range got {
			w, ok := msgs[messageID(g.Raw)]
			if !ok {
				t.Errorf("%s: unexpected message %s", name, g.Path)
				continue
			}
			if !bytes.Equal(LF(g.Raw), LF(w.raw)) {
				t.Errorf("%s: %s differs from the message seeded", name, g.Path)
			}
			if g.Flags != w.flags {
				t.Errorf("%s: %s has flags %q, want %q", name, g.Path, g.Flags, w.flags)
			}
		}
	}

	// Both ways: \Flagged set in the Maildir on INBOX's first message,
	// \Answered set on the server on Archive's first message.
	first := folders["INBOX"][0]
	if strings.Contains(first.Flags, "F") || strings.Contains(folders["Archive"][0].Flags, "R") {
		t.Fatalf("the messages chosen already carry the flags to be set: %q, %q", first.Flags, folders["Archive"][0].Flags)
	}
	if err := mb.SetFlags(first, first.Flags+"F"); err != nil {
		t.Fatal(err)
	}
	if _, err := Exec(ctx, target, `s1 SELECT Archive`, `s2 STORE 1 +FLAGS (\Answered)`); err != nil {
		t.Fatal(err)
	}
	archived, err := ServerFlags(ctx, target, "Archive")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mb.Run(ctx); err != nil {
		t.Fatal(err)
	}
	server, err := ServerFlags(ctx, target, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if f := server[messageID(first.Raw)]; !strings.Contains(f, `\Flagged`) {
		t.Errorf("flag set in the Maildir did not reach the server: %s", f)
	}
	folders, err = mb.Folders()
	if err != nil {
		t.Fatal(err)
	}
	answered := 0
	for _, f := range archived {
		if strings.Contains(f, `\Answered`) {
			answered++
		}
	}
	if answered == 0 {
		t.Fatalf("no message in Archive is \\Answered on the server after the STORE: %v", archived)
	}
	for _, m := range folders["Archive"] {
		id := messageID(m.Raw)
		hasR := strings.Contains(m.Flags, "R")
		if hasR != strings.Contains(archived[id], `\Answered`) {
			t.Errorf("Archive %s: Maildir flags %q, server flags %s", id, m.Flags, archived[id])
		}
	}
}

type corpusMsg struct {
	raw   []byte
	flags string
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
