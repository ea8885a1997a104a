package imapsync_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
)

// TestFreshMatchedAmongMany: a new local file that is a copy of a message
// new upstream (saved by hand, or copied while the index was lost) takes
// that message's UID and is neither uploaded nor downloaded again, among a
// few new server messages (whose identities are asked behind the plan's
// FETCH, TestIdentitiesBehindFetch) and among more than matchFresh asks
// the identities of at once (it asks their sizes first, then the
// identities of those of a fresh file's size); a genuinely new local file
// is uploaded.
func TestFreshMatchedAmongMany(t *testing.T) {
	for _, n := range []int{5, 40} { // below and above matchFew
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			e := newEnv(t)
			e.d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(5, 20, corpus.Options{Folders: []string{"INBOX"}}))
			e.sync()

			var copied []byte
			for i := range n {
				raw := e.appendServer("INBOX", fmt.Sprintf("upstream-%02d", i))
				if i == 3 {
					copied = raw
				}
			}
			e.writeForeign("INBOX", "1772445600.copy.laptop", bytes.ReplaceAll(copied, []byte("\r\n"), []byte("\n")))
			e.writeLocal("INBOX", "mine")

			res, _ := e.sync()
			tot := res.Totals()
			if tot.Uploaded != 1 || tot.New != n-1 {
				t.Errorf("uploaded %d, downloaded %d; want 1 (the new local file) and %d (all but the copy's)", tot.Uploaded, tot.New, n-1)
			}
			if got := e.localCopies("INBOX", "upstream-03@example.org"); got != 1 {
				t.Errorf("%d local files of the copied message, want 1", got)
			}
			e.compare() // one server copy of each message, the same on both sides
		})
	}
}
