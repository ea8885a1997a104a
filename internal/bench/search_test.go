package main

import (
	"context"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
)

// TestSearchSmoke runs the search scenario on a small corpus: both tools
// index the same Maildir, every query runs on both without an error
// (notmuch has no size search), and the plain-word queries find the same
// messages in both; with the query language every query whose semantics
// agree (no note) finds the same messages.
func TestSearchSmoke(t *testing.T) {
	testenv.NeedDovecot(t) // fails, not skips, with CI=true
	needSearchPeers(t)
	o := searchOptions{benchOptions: benchOptions{messages: 300, seed: 1, runs: 1}, repeat: 1}
	if testing.Short() {
		o.messages = 150
	}
	rep, err := benchSearch(context.Background(), o, []string{"-messages", "300"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	rep.writeText(&out)
	t.Logf("\n%s", out.String())
	if rep.Corpus.Messages != o.messages || rep.Index.PostfachMedian.Wall <= 0 || rep.Index.NotmuchMedian.Wall <= 0 {
		t.Fatalf("corpus %+v, indexing %+v: nothing measured", rep.Corpus, rep.Index)
	}
	if len(rep.Queries) != 20 {
		t.Fatalf("%d queries, want 20", len(rep.Queries))
	}
	for _, q := range rep.Queries {
		name := q.Query.Name
		if q.Postfach.Error != "" || len(q.Postfach.Runs) != 1 {
			t.Errorf("%s: postfach: %q, %d runs", name, q.Postfach.Error, len(q.Postfach.Runs))
		}
		if q.Query.Notmuch == "" {
			continue
		}
		if q.Notmuch.Error != "" || len(q.Notmuch.Runs) != 1 {
			t.Errorf("%s: notmuch: %q, %d runs", name, q.Notmuch.Error, len(q.Notmuch.Runs))
		}
		same := q.Query.Plain && !strings.Contains(name, "accent") || rep.Language && q.Query.Note == ""
		if !same {
			continue
		}
		if q.Postfach.All != q.Notmuch.All || (q.Agree != "" && q.Agree != "same") {
			t.Errorf("%s: postfach found %d, notmuch %d (%s): %q vs %q", name, q.Postfach.All, q.Notmuch.All, q.Agree, q.Query.Postfach, q.Query.Notmuch)
		}
	}
	if q := rep.Queries[0]; q.Postfach.All == 0 {
		t.Errorf("the common word %q found nothing", q.Query.Postfach)
	}
}

// needSearchPeers skips the test without notmuch or the dictionaries, or
// fails it with CI=true.
func needSearchPeers(t *testing.T) {
	t.Helper()
	_, err := exec.LookPath("notmuch")
	if err == nil {
		_, err = corpus.LoadVocabulary()
	}
	if err != nil {
		if os.Getenv("CI") != "true" {
			t.Skipf("skipping: needs notmuch, wamerican and wngerman (apt-get install notmuch wamerican wngerman): %v", err)
		}
		t.Fatal(err)
	}
}
