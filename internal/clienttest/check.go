package clienttest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Differential runs session s against ref and target (each seeded with
// s's messages first) and returns the commands whose normalised responses
// differ.
func Differential(ctx context.Context, ref, target Target, s *Session, opts *Options) ([]Difference, error) {
	type result struct {
		tr  *Transcript
		err error
	}
	ch := make(chan result, 1)
	go func() {
		tr, err := RunSession(ctx, ref, s)
		ch <- result{tr, err}
	}()
	got, err := RunSession(ctx, target, s)
	want := <-ch
	if want.err != nil {
		return nil, fmt.Errorf("reference: %w", want.err)
	}
	if err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	if dir := os.Getenv("CLIENTTEST_DUMP"); dir != "" {
		want.tr.dump(filepath.Join(dir, s.Name+".reference.txt"))
		got.dump(filepath.Join(dir, s.Name+".target.txt"))
	}
	return Compare(want.tr, got, opts), nil
}

// Options adjust the comparison.
type Options struct {
	// UIDAnywhere accepts a target's FETCH response with UID not first.
	// The issue requires UID first (Thunderbird relies on it), but
	// Dovecot answers FETCH n (FLAGS UID) with UID second: the Dovecot
	// self-check sets it, a check of postfach must not.
	UIDAnywhere bool

	// Normalize, when set, rewrites every normalised response line of
	// both sides before they are compared ("" drops the line): the place
	// to declare a difference judged legitimate that normalize.go does not
	// know, say func(l string) string { if strings.HasPrefix(l, "* OK
	// [UNSEEN ") { return "" }; return l }.
	Normalize func(line string) string

	// The options below accept, from the target only, what a server may
	// do by the RFCs and Dovecot does not (see accept.go).

	// ExtraUID accepts a UID item the target adds to a FETCH response
	// (first, as the issue asks) where the reference sends none: in
	// unsolicited FETCH responses, after STORE, in FETCH without UID
	// (RFC 3501 7.4.2 lets a server send data items not asked for).
	ExtraUID bool

	// FlagKeywords leaves keywords out of FLAGS and PERMANENTFLAGS on
	// both sides (RFC 3501 7.2.6: "at a minimum, the system-defined
	// flags"; a server may list its own, as postfach lists $Forwarded,
	// or the mailbox's keywords, as Dovecot does), and so the FLAGS and
	// PERMANENTFLAGS repeated after a new keyword appears.
	FlagKeywords bool

	// StoreEcho accepts a FETCH FLAGS the target sends after a STORE
	// (not .SILENT) for a message whose flags the STORE did not change
	// (RFC 3501 6.4.6 answers a STORE with the flags of each message in
	// the set; Dovecot leaves out the unchanged ones). It is accepted
	// only for a message in the STORE's set with flags that agree with
	// it.
	StoreEcho bool

	// ExtraCodes accepts these response codes (RFC 5530: NONEXISTENT,
	// CANNOT, ...) on a tagged NO or BAD of the target where the
	// reference's has no code.
	ExtraCodes []string

	// ReadOnlyStoreNO accepts NO [CANNOT] from the target for a STORE
	// in a mailbox selected with EXAMINE, where the reference answers OK
	// and changes nothing (RFC 9051 6.3.3 permits no change there; a NO
	// says so, an OK that changes nothing is allowed too).
	ReadOnlyStoreNO bool

	// InvalidNameBAD accepts BAD from the target where the reference
	// answers NO, for a command one of whose quoted mailbox names is not
	// valid modified UTF-7 (RFC 3501 5.1.3): both refuse it; no RFC says
	// with which (go-imap's parser answers BAD: "arguments invalid").
	InvalidNameBAD bool

	// NoID accepts, for an ID command (RFC 2971), BAD from a target that
	// does not implement ID (and so does not advertise it: clients send
	// ID only to a server that does) where the reference answers an
	// untagged ID and OK; before login BAD and BYE (go-imap ends the
	// connection at an unknown command there).
	NoID bool

	// KnownDefects names differences that are the target's defects, known
	// and not fixed yet, with why: "<session>/<tag>" for a command of a
	// conformance session ("envelope/a2"), "imaplib/<step>" for a step
	// of the imaplib run. Such a difference is logged, not failed; a
	// listed one that no longer differs fails (take it off the list). It
	// is never for a difference the RFCs allow: those are accepted above.
	KnownDefects map[string]string
}

// knownDefect returns why key is a known defect of the target, if it is.
func (o *Options) knownDefect(key string) (string, bool) {
	if o == nil {
		return "", false
	}
	why, ok := o.KnownDefects[key]
	return why, ok
}

// stepKey is the KnownDefects key of a session's command: the session and
// the command's tag.
func stepKey(session string, st Step) string {
	tag, _, _ := strings.Cut(st.Text, " ")
	return session + "/" + tag
}

// dump writes the transcript, raw and normalised, to path (for reading a
// difference; CLIENTTEST_DUMP=dir).
func (tr *Transcript) dump(path string) {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s against %s\n", tr.Session, tr.Target)
	for _, r := range tr.Records {
		fmt.Fprintf(&b, "\n%s%c %s\n", r.Step.Conn, r.Step.Kind, strings.ReplaceAll(r.Step.Text, "\x00", "{literal}"))
		for _, l := range r.Responses {
			fmt.Fprintf(&b, "  S: %s\n", strconvQuote(string(l)))
		}
		for _, l := range r.Normal() {
			fmt.Fprintf(&b, "  N: %s\n", l)
		}
	}
	os.MkdirAll(filepath.Dir(path), 0o755)
	os.WriteFile(path, []byte(b.String()), 0o644)
}

// CheckConformance runs every session in sessions (all embedded ones when
// nil) as a parallel subtest, each against a fresh account of ref and of
// target, and reports each difference as a test error.
//
// The lead points it at postfach with an Endpoint for the local IMAP
// endpoint: CheckConformance(t, DovecotEndpoint(t, n), postfachEndpoint, nil, nil).
func CheckConformance(t *testing.T, ref, target Endpoint, sessions []*Session, opts *Options) {
	t.Helper()
	if sessions == nil {
		var err error
		if sessions, err = Sessions(); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range sessions {
		t.Run(s.Name, func(t *testing.T) {
			t.Parallel()
			r, g := ref(t), target(t)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			diffs, err := Differential(ctx, r, g, s, opts)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			n := 0
			differs := map[string]bool{}
			for _, d := range diffs {
				key := stepKey(s.Name, d.Step)
				differs[key] = true
				if why, ok := opts.knownDefect(key); ok {
					t.Logf("known defect of the target at %s (%s):\n%s", key, why, d.String())
					continue
				}
				b.WriteString(d.String())
				n++
			}
			if n > 0 {
				t.Errorf("%s (%s): %d commands answered differently from the reference:\n%s", s.Name, s.Description, n, b.String())
			}
			if opts != nil {
				for key := range opts.KnownDefects {
					if strings.HasPrefix(key, s.Name+"/") && !differs[key] {
						t.Errorf("%s is listed as a known defect but answers as the reference now: take it off KnownDefects", key)
					}
				}
			}
		})
	}
}
