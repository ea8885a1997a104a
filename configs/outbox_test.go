package configs

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestOutboxKeys: the outbox keys of [accounts.smtp] and the account's
// addresses, their defaults and their checks.
func TestOutboxKeys(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	smtp := "[accounts.smtp]\nhost = \"smtp.example.org\"\n"
	c, errs := load(t, account+smtp)
	if errs != nil {
		t.Fatal(errs)
	}
	a := c.Accounts[0]
	s := a.SMTP
	if !s.SaveSent || s.SentFolder != "" || s.QueueExpiry != 5*24*time.Hour || s.QueueWarn != 4*time.Hour {
		t.Errorf("defaults: %+v", s)
	}
	if a.Addresses != nil {
		t.Errorf("addresses of username %q: %q, want none", a.Username, a.Addresses)
	}
	doc := strings.Replace(account, `username = "u"`, `username = "me@example.org"`, 1)
	if c, errs = load(t, doc); errs != nil || !reflect.DeepEqual(c.Accounts[0].Addresses, []string{"me@example.org"}) {
		t.Errorf("addresses default: %v %v", errs, c)
	}
	c, errs = load(t, account+"addresses = [\"a@x.org\", \"b@y.org\"]\n"+smtp+
		"save_sent = false\nsent_folder = \"Sent Items\"\nqueue_expiry = \"48h\"\nqueue_warn = \"30m\"\n")
	if errs != nil {
		t.Fatal(errs)
	}
	a = c.Accounts[0]
	s = a.SMTP
	if s.SaveSent || s.SentFolder != "Sent Items" || s.QueueExpiry != 48*time.Hour || s.QueueWarn != 30*time.Minute ||
		!reflect.DeepEqual(a.Addresses, []string{"a@x.org", "b@y.org"}) {
		t.Errorf("values: %+v %q", s, a.Addresses)
	}
	for _, tc := range []struct{ doc, want string }{
		{account + "addresses = [\"nobody\"]\n", `accounts[1].addresses: "nobody" is not a mail address`},
		{account + "addresses = [\"<a@x.org>\"]\n", `is not a mail address`},
		{account + smtp + "queue_expiry = \"5 days\"\n", `accounts[1].smtp.queue_expiry: "5 days" is not a duration`},
		{account + smtp + "queue_warn = \"10s\"\n", `queue_warn: must be at least 1m0s`},
		{account + smtp + "queue_warn = \"6h\"\nqueue_expiry = \"5h\"\n", `queue_warn: 6h0m0s is not shorter than queue_expiry`},
		{account + smtp + "save_sent = \"yes\"\n", `save_sent`},
		{account + smtp + "sent_folder = \"a\\u0001b\"\n", `sent_folder`},
	} {
		_, errs := load(t, tc.doc)
		if len(errs) != 1 || !strings.Contains(errs[0], tc.want) {
			t.Errorf("%q: errors %q, want one with %q", tc.doc, errs, tc.want)
		}
	}
}
