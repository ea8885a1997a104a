package pop3

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/postfach/postfach/sync/nethint"
)

// TestPermanent: POP3's errors answer nethint.Permanent as the agent's
// backoff needs: a refused login and SYS/PERM, a server without STLS and
// an unknown tls mode are permanent; SYS/TEMP, IN-USE, LOGIN-DELAY, other
// refusals and a lost connection are temporary, also inside a ConnError.
func TestPermanent(t *testing.T) {
	conn := func(err error) error { return &ConnError{Addr: "pop.example.org:995", Op: "login as u", Err: err} }
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"[AUTH]", &Error{Command: "PASS", Reply: "[AUTH] no", Code: "AUTH"}, true},
		{"PASS without code", conn(&Error{Command: "PASS", Reply: "no"}), true},
		{"AUTH PLAIN without code", conn(&Error{Command: "AUTH PLAIN", Reply: "no"}), true},
		{"USER without code", &Error{Command: "USER u", Reply: "no"}, true},
		{"SYS/PERM", conn(&Error{Command: "PASS", Reply: "[SYS/PERM] gone", Code: "SYS/PERM"}), true},
		{"SYS/TEMP", conn(&Error{Command: "PASS", Reply: "[SYS/TEMP] later", Code: "SYS/TEMP"}), false},
		{"IN-USE", conn(&Error{Command: "PASS", Reply: "[IN-USE] locked", Code: "IN-USE"}), false},
		{"LOGIN-DELAY", conn(&Error{Command: "PASS", Reply: "[LOGIN-DELAY] wait", Code: "LOGIN-DELAY"}), false},
		{"LOGIN-DELAY sub-code", &Error{Command: "PASS", Reply: "x", Code: "LOGIN-DELAY/x"}, false},
		{"greeting refused", conn(&Error{Command: "greeting", Reply: "busy"}), false},
		{"RETR refused", fmt.Errorf("message 3: %w", &Error{Command: "RETR 3", Reply: "no"}), false},
		{"no STLS", conn(ErrNoSTLS), true},
		{"unknown mode", checkMode("ssl"), true},
		{"cut", conn(io.ErrUnexpectedEOF), false},
		{"protocol", &ProtocolError{Command: "UIDL", Msg: "bad listing"}, false},
	} {
		if got := nethint.Permanent(tc.err); got != tc.want {
			t.Errorf("%s: Permanent(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
	if !errors.Is(conn(ErrNoSTLS), ErrNoSTLS) || ErrNoSTLS.Error() != "pop3: server does not offer STLS; use tls = implicit, or none on a trusted network" {
		t.Errorf("ErrNoSTLS: %v", ErrNoSTLS)
	}
}
