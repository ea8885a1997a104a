package imapsync_test

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/faultproxy"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/sync/imapsync"
)

// TestDialsBesideTheFirst: each folder changed here since its stamp is
// planned on a connection of its own, and those connections are dialed as
// soon as the stamps tell, beside the first, not once the LIST has
// answered (over a network, the first's login and LIST came before their
// logins): while the proxy holds back the server's answer to the LIST,
// the connections of the two other changed folders connect.
func TestDialsBesideTheFirst(t *testing.T) {
	e := newEnv(t)
	folders := corpus.DefaultFolders
	if len(folders) < 4 {
		t.Fatalf("the corpus has %d folders, the test needs 4", len(folders))
	}
	e.d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(5, 40, corpus.Options{}))
	e.sync()
	time.Sleep(200 * time.Millisecond) // past the stamps' racy window (maildir.Stamp.Racy)
	e.sync()                           // every folder's stamp recorded
	for i, f := range folders[:3] {
		raw := bytes.ReplaceAll(corpus.At(6, i, corpus.Options{}).Raw, []byte("\r\n"), []byte("\n"))
		e.writeForeign(f, fmt.Sprintf("1772445600.M%dP1.laptop", i), raw)
	}

	// The uploader is dialed ahead too (TestUploaderDialedAhead): not
	// counted here.
	p := e.throughProxy(4, func(o *imapsync.Options) { o.NoMultiAppend = true })
	var held atomic.Int32 // connections accepted while the LIST's answer was held
	p.Add(faultproxy.Fault{Name: "hold the LIST", Dir: faultproxy.Down, Pattern: "* LIST ", Max: 1, Action: faultproxy.Call,
		Fn: func() {
			for deadline := time.Now().Add(5 * time.Second); p.Conns() < 3 && time.Now().Before(deadline); {
				time.Sleep(5 * time.Millisecond)
			}
			held.Store(int32(p.Conns()))
		}})
	res, _ := e.sync()
	if p.Count("hold the LIST") != 1 {
		t.Fatalf("the LIST was held %d times, want 1 (%+v)", p.Count("hold the LIST"), p.Fired())
	}
	if n := held.Load(); n != 3 {
		t.Errorf("%d connections while the LIST's answer was held, want 3: the first, and one for each of the two other folders changed here", n)
	}
	if tot := res.Totals(); tot.Uploaded != 3 {
		t.Errorf("uploaded %d, want the 3 new files", tot.Uploaded)
	}
	e.compare()
}
