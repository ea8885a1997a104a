package agent

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDialAheadSecretOnce: a sync whose connection is dialed ahead
// (DialAhead, as postfach sync does) runs the account's password command
// once, also when it fails: the sync reports that failure, it does not
// ask again (a password command may prompt: pinentry, a hardware key).
func TestDialAheadSecretOnce(t *testing.T) {
	dir := t.TempDir()
	count := filepath.Join(dir, "count")
	ln, err := net.Listen("tcp", "127.0.0.1:0") // never dialed: the secret fails first
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	doc := fmt.Sprintf("[store]\npath = %q\n\n[[accounts]]\nname = \"work\"\nkind = \"imap\"\nhost = \"127.0.0.1\"\nport = %d\ntls = \"none\"\nusername = \"me\"\npassword_cmd = %q\n",
		filepath.Join(dir, "store"), port, "echo run >> "+count+"; echo no key >&2; exit 1")
	cfg := writeConfig(t, dir, doc)
	ctx := context.Background()
	ahead := DialAhead(ctx, cfg, nil, discardLog)
	defer ahead.Close()
	a, err := Open(cfg, discardLog)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.UseDialed(ahead)
	_, err = a.Sync(ctx, nil, nil)
	if err == nil {
		t.Fatal("a failing password command: no error")
	}
	data, _ := os.ReadFile(count)
	if n := strings.Count(string(data), "run"); n != 1 {
		t.Errorf("the password command ran %d times, want once (error: %v)", n, err)
	}
}
