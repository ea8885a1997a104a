package main

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
)

// TestSearchJSONAndShow: after a sync, search --json answers the query
// language with one JSON object per line (the contract's fields, newest
// first, --limit and --offset), a syntax error is one line naming the
// column, and show prints a message's decoded header fields and its text
// (the plain part; HTML reduced to text when it is all), control
// characters escaped, and --raw its bytes unchanged.
func TestSearchJSONAndShow(t *testing.T) {
	t.Parallel()
	d := testenv.StartDovecot(t)
	raws := map[string]string{
		"plain": "From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <jm@example.de>\r\nTo: Anna <anna@example.org>\r\nCc: Bert <bert@example.org>\r\n" +
			"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe_aus_Z=C3=BCrich?=\r\nDate: Mon, 02 Mar 2026 10:00:00 +0100\r\nMessage-ID: <plain@example.org>\r\n" +
			"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"m\"\r\n\r\n" +
			"--m\r\nContent-Type: multipart/alternative; boundary=\"a\"\r\n\r\n" +
			"--a\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHallo Anna,\r\nder Bericht liegt bei. \x1b[2J\r\n" +
			"--a\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Hallo Anna, HTML-Fassung</p>\r\n--a--\r\n" +
			"--m\r\nContent-Type: application/pdf; name=\"Bericht-2026.pdf\"\r\nContent-Disposition: attachment; filename=\"Bericht-2026.pdf\"\r\n" +
			"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--m--\r\n",
		"html": "From: Newsletter <news@example.com>\r\nTo: anna@example.org\r\nSubject: Neuigkeiten im Maerz\r\n" +
			"Date: Tue, 03 Mar 2026 08:00:00 +0000\r\nMessage-ID: <html@example.org>\r\nMIME-Version: 1.0\r\n" +
			"Content-Type: text/html; charset=utf-8\r\n\r\n<html><body><h1>Neu &amp; frisch</h1><p>Lieferung am Montag</p></body></html>\r\n",
		"old": "From: Old <old@example.com>\r\nTo: anna@example.org\r\nSubject: Bericht von damals\r\n" +
			"Date: Wed, 01 Jan 2020 08:00:00 +0000\r\nMessage-ID: <old@example.org>\r\n\r\nDer alte Bericht.\r\n",
	}
	var msgs []corpus.Message
	for _, name := range []string{"plain", "html", "old"} {
		msgs = append(msgs, corpus.Message{Folder: "INBOX", Raw: []byte(raws[name]), Date: time.Date(2026, 3, 4, 9, 0, 0, 0, time.UTC)})
	}
	d.Seed(t, testenv.DefaultUser.Name, msgs)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "config.toml", filepath.Join(dir, "store"), imapAccount(d, "work"))
	mustRun(t, nil, "--config", cfg, "sync")

	type hit struct {
		ID        int64  `json:"id"`
		Account   string `json:"account"`
		Folder    string `json:"folder"`
		Date      string `json:"date"`
		From      string `json:"from"`
		Subject   string `json:"subject"`
		MessageID string `json:"message_id"`
	}
	search := func(args ...string) []hit {
		t.Helper()
		r := mustRun(t, nil, append([]string{"--config", cfg, "search", "--json"}, args...)...)
		var hits []hit
		for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
			if line == "" {
				continue
			}
			var h hit
			if err := json.Unmarshal([]byte(line), &h); err != nil {
				t.Fatalf("search %q: line %q: %v", args, line, err)
			}
			hits = append(hits, h)
		}
		return hits
	}
	ids := func(hs []hit) string {
		var s []string
		for _, h := range hs {
			s = append(s, strings.TrimSuffix(h.MessageID, "@example.org"))
		}
		return strings.Join(s, " ")
	}
	all := search("bericht", "OR", "lieferung")
	if got := ids(all); got != "html plain old" {
		t.Fatalf("bericht OR lieferung: %q, want newest first: html plain old", got)
	}
	p := all[1]
	wantDate := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	if date, err := time.Parse(time.RFC3339, p.Date); err != nil || !date.Equal(wantDate) || p.ID <= 0 ||
		p.Account != "work" || p.Folder != "INBOX" || p.From != "Jürgen Müller <jm@example.de>" || p.Subject != "Grüße aus Zürich" {
		t.Errorf("hit %+v", p)
	}
	for q, want := range map[string]string{
		"grusse zurich":                 "plain",
		"from:jurgen":                   "plain",
		"cc:bert":                       "plain",
		"to:bert":                       "",
		"attachment:bericht-2026.pdf":   "plain",
		"has:attachment":                "plain",
		"mimetype:application/pdf":      "plain",
		"mimetype:text":                 "html plain old",
		"bericht -has:attachment":       "old",
		"date:2026-03 bericht":          "plain",
		"before:2026 OR subject:neuig*": "html old",
		"folder:INBOX after:2026-03-03": "html",
		"\"liegt bei\" account:work":    "plain",
		"account:other":                 "",
		"(frisch OR damals) size:<100k": "html old",
	} {
		if got := ids(search(q)); got != want {
			t.Errorf("search %q: %q, want %q", q, got, want)
		}
	}
	if got := ids(search("--limit", "1", "--offset", "1", "bericht OR lieferung")); got != "plain" {
		t.Errorf("--limit 1 --offset 1: %q, want plain", got)
	}
	r := run(t, nil, "--config", cfg, "search", "from:jm", "(bericht")
	checkOneLineError(t, r, `search: at column 17: missing ")" (for "(" at column 9)`)

	// The table: date, sender, subject, folder, id.
	r = mustRun(t, nil, "--config", cfg, "search", "grüße")
	if f := strings.Fields(r.stdout); !strings.Contains(r.stdout, "Jürgen Müller <jm@example.de>") ||
		!strings.Contains(r.stdout, "Grüße aus Zürich") || len(f) < 2 || f[len(f)-2] != "work/INBOX" || f[len(f)-1] != strconv.FormatInt(p.ID, 10) {
		t.Errorf("table:\n%s", r.stdout)
	}

	checkShow(t, cfg, dir, p.ID, all[0].ID)
	r = run(t, nil, "--config", cfg, "show", "999999")
	checkOneLineError(t, r, "no message with id 999999")
}

// checkShow checks show of the multipart message plainID (its plain
// text, a control character escaped; --raw: the stored file) and of the
// HTML-only message htmlID (reduced to lines of text).
func checkShow(t *testing.T, cfg, dir string, plainID, htmlID int64) {
	t.Helper()
	id := strconv.FormatInt(plainID, 10)
	r := mustRun(t, nil, "--config", cfg, "show", id)
	noRawControl(t, "show", r.stdout)
	want := "From: Jürgen Müller <jm@example.de>\nTo: Anna <anna@example.org>\nCc: Bert <bert@example.org>\n" +
		"Date: Mon, 02 Mar 2026 10:00:00 +0100\nSubject: Grüße aus Zürich\n\nHallo Anna,\nder Bericht liegt bei. \\x1b[2J\n"
	if r.stdout != want {
		t.Errorf("show %s:\n%q\nwant\n%q", id, r.stdout, want)
	}
	r = mustRun(t, nil, "--config", cfg, "show", strconv.FormatInt(htmlID, 10))
	if !strings.HasSuffix(r.stdout, "Subject: Neuigkeiten im Maerz\n\nNeu & frisch\n\nLieferung am Montag\n") {
		t.Errorf("show of the HTML message:\n%q", r.stdout)
	}
	r = mustRun(t, nil, "--config", cfg, "show", "--raw", id)
	found := false
	err := filepath.WalkDir(filepath.Join(dir, "store", "work"), func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		found = found || string(b) == r.stdout
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !found || !strings.Contains(r.stdout, "\x1b[2J") {
		t.Errorf("show --raw is not the stored file byte for byte:\n%q", r.stdout)
	}
}
