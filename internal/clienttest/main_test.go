package clienttest

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/postfach/postfach/internal/testenv"
)

// The tests share two Dovecot instances, "reference" and "target", started
// on first use and stopped after all tests: each test takes fresh users
// from them, so that starting Dovecot is paid twice, not per test.
var shared [2]struct {
	once sync.Once
	d    *testenv.Dovecot
	dir  string
	err  error
	next atomic.Int32
}

const sharedUsers = 256

// sharedEndpoint is the Endpoint of shared instance i (0 reference, 1
// target). With CI=true a missing Dovecot fails the test.
func sharedEndpoint(i int) Endpoint {
	return func(t testing.TB) Target {
		t.Helper()
		testenv.NeedDovecot(t)
		s := &shared[i]
		s.once.Do(func() {
			if s.dir, s.err = os.MkdirTemp("", "clienttest-dovecot-"); s.err != nil {
				return
			}
			cfg := testenv.Config{Dir: s.dir}
			for u := 1; u <= sharedUsers; u++ {
				cfg.Users = append(cfg.Users, testenv.User{Name: fmt.Sprintf("u%d", u), Password: fmt.Sprintf("pass-%d", u)})
			}
			s.d, s.err = testenv.NewDovecot(cfg)
		})
		if s.err != nil {
			t.Fatal(s.err)
		}
		n := s.next.Add(1)
		if n > sharedUsers {
			t.Fatalf("all %d users of the shared Dovecot are taken", sharedUsers)
		}
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("Dovecot %s log: %s", s.d.Version, s.d.LogFile)
			}
		})
		return DovecotTarget(s.d, fmt.Sprintf("u%d", n))
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	for i := range shared {
		s := &shared[i]
		if s.d != nil {
			if err := s.d.Stop(); err != nil {
				fmt.Fprintln(os.Stderr, err)
			}
		}
		if s.dir != "" && code == 0 {
			os.RemoveAll(s.dir)
		}
	}
	os.Exit(code)
}
