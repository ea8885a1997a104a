package testenv

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postfach/postfach/internal/corpus"
)

var (
	alice = User{Name: "alice", Password: "alice-secret"}
	carol = User{Name: "carol.d@example.org", Password: "pw with spaces"}
	bob   = User{Name: "bob", Password: "bob-secret"}
)

func TestSeed(t *testing.T) {
	d := StartDovecot(t, alice, bob, carol)
	msgs := corpus.Generate(1, 50, corpus.Options{})
	for _, f := range []string{"Lists/Go", "Entwürfe"} {
		if !slices.Contains(Folders(msgs), f) {
			t.Fatalf("corpus has no message in %q", f)
		}
	}
	d.Seed(t, "alice", msgs)
	c := d.Client(t, "alice")
	checkMailbox(t, c, msgs)

	// bob is untouched; an address-like user name works.
	if n := numMessages(d.Client(t, "bob"), "INBOX"); n != 0 {
		t.Errorf("bob's INBOX has %d messages", n)
	}
	d.Seed(t, carol.Name, msgs[:3])
	if n := numMessages(d.Client(t, carol.Name), "INBOX"); n == 0 {
		t.Errorf("%s's INBOX is empty", carol.Name)
	}
	// The on-disk names: Maildir++ with modified UTF-7.
	for _, dir := range []string{".Lists.Go", ".Entw&APw-rfe", "cur"} {
		if _, err := os.Stat(filepath.Join(d.MailDir("alice"), dir)); err != nil {
			t.Error(err)
		}
	}
	// Seeding again appends to the existing folders.
	more := corpus.Generate(2, 5, corpus.Options{})
	d.Seed(t, "alice", more)
	checkMailbox(t, c, append(msgs, more...))
}

func TestSeedFiles(t *testing.T) {
	d := StartDovecot(t, alice)
	msgs := corpus.Generate(1, 50, corpus.Options{})
	// A keyword Dovecot already knows, to check dovecot-keywords is merged.
	d.Seed(t, "alice", []corpus.Message{{Folder: "INBOX", Flags: []imap.Flag{"$Other"}, Date: msgs[0].Date.Add(-time.Hour), MessageID: "first@x", Raw: []byte("Message-ID: <first@x>\r\nSubject: first\r\n\r\nhi\r\n")}})
	d.SeedFiles(t, "alice", msgs)
	c := d.Client(t, "alice")
	checkMailbox(t, c, append([]corpus.Message{{Folder: "INBOX", Flags: []imap.Flag{"$Other"}, Date: msgs[0].Date.Add(-time.Hour), MessageID: "first@x", Raw: []byte("Message-ID: <first@x>\r\nSubject: first\r\n\r\nhi\r\n")}}, msgs...))
	if fi, err := os.Stat(filepath.Join(d.MailDir("alice"), ".Entw&APw-rfe", "cur")); err != nil {
		t.Fatal(err)
	} else if st, ok := fi.Sys().(interface{ Uid() int }); ok && st.Uid() != d.uid {
		t.Errorf("folder owned by %d, want %d", st.Uid(), d.uid)
	}
}

// checkMailbox compares every folder of msgs over IMAP: LIST, STATUS, and
// FETCH of flags, internal date, size and Message-ID in UID order.
func checkMailbox(t *testing.T, c *imapclient.Client, msgs []corpus.Message) {
	t.Helper()
	boxes, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range boxes {
		names = append(names, b.Mailbox)
		if b.Delim != '/' {
			t.Errorf("LIST %q: delimiter %q, want '/'", b.Mailbox, b.Delim)
		}
	}
	for _, f := range Folders(msgs) {
		if !slices.Contains(names, f) {
			t.Fatalf("LIST: no %q in %q", f, names)
		}
		var want []corpus.Message
		for _, m := range msgs {
			if folderName(m.Folder) == f {
				want = append(want, m)
			}
		}
		st, err := c.Status(f, &imap.StatusOptions{NumMessages: true, HighestModSeq: true}).Wait()
		if err != nil {
			t.Fatal(err)
		}
		if *st.NumMessages != uint32(len(want)) {
			t.Fatalf("STATUS %q: %d messages, want %d", f, *st.NumMessages, len(want))
		}
		if st.HighestModSeq == 0 {
			t.Errorf("STATUS %q: no HIGHESTMODSEQ (CONDSTORE)", f)
		}
		if _, err := c.Select(f, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			t.Fatal(err)
		}
		fetched, err := c.Fetch(allSeq(), &imap.FetchOptions{
			UID: true, Flags: true, InternalDate: true, RFC822Size: true, Envelope: true,
		}).Collect()
		if err != nil {
			t.Fatal(err)
		}
		if len(fetched) != len(want) {
			t.Fatalf("FETCH %q: %d messages, want %d", f, len(fetched), len(want))
		}
		slices.SortFunc(fetched, func(a, b *imapclient.FetchMessageBuffer) int { return int(a.UID) - int(b.UID) })
		for i, fm := range fetched {
			m := want[i]
			if fm.Envelope.MessageID != m.MessageID {
				t.Errorf("%q UID %d: Message-ID %q, want %q", f, fm.UID, fm.Envelope.MessageID, m.MessageID)
			}
			if !fm.InternalDate.Equal(m.Date.Truncate(time.Second)) {
				t.Errorf("%q UID %d: INTERNALDATE %v, want %v", f, fm.UID, fm.InternalDate, m.Date)
			}
			if fm.RFC822Size != int64(len(m.Raw)) {
				t.Errorf("%q UID %d: RFC822.SIZE %d, want %d", f, fm.UID, fm.RFC822Size, len(m.Raw))
			}
			if g, w := flagSet(fm.Flags), flagSet(m.Flags); g != w {
				t.Errorf("%q UID %d: FLAGS %s, want %s", f, fm.UID, g, w)
			}
		}
	}
	if err := c.Unselect().Wait(); err != nil {
		t.Fatal(err)
	}
}

func allSeq() imap.SeqSet {
	var s imap.SeqSet
	s.AddRange(1, 0) // 1:*
	return s
}

// flagSet is a canonical string of flags without \Recent.
func flagSet(flags []imap.Flag) string {
	var s []string
	for _, f := range flags {
		if !strings.EqualFold(string(f), `\Recent`) {
			s = append(s, strings.ToLower(string(f)))
		}
	}
	slices.Sort(s)
	return strings.Join(s, " ")
}

func TestPOP3(t *testing.T) {
	d := StartDovecot(t, alice)
	msgs := corpus.Generate(1, 20, corpus.Options{Folders: []string{"INBOX"}})
	d.Seed(t, "alice", msgs)

	conn, err := net.Dial("tcp", d.POP3Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	cmd := func(line string) string {
		t.Helper()
		if line != "" {
			conn.Write([]byte(line + "\r\n"))
		}
		resp, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(resp, "+OK") {
			t.Fatalf("POP3 %q: %q", line, resp)
		}
		return strings.TrimSpace(resp)
	}
	cmd("")
	cmd("USER alice")
	cmd("PASS alice-secret")
	if got, want := cmd("STAT"), "+OK "+strconv.Itoa(len(msgs))+" "; !strings.HasPrefix(got, want) {
		t.Errorf("STAT = %q, want prefix %q", got, want)
	}
	cmd("UIDL 1")
	cmd("QUIT")
	// UIDL: %08Xu%08Xv; Dovecot writes the hex digits in lower case.
	conn2, err := net.Dial("tcp", d.POP3Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	conn, r = conn2, bufio.NewReader(conn2)
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	cmd("")
	cmd("USER alice")
	cmd("PASS alice-secret")
	if got := cmd("UIDL 1"); !regexp.MustCompile(`^\+OK 1 00000001[0-9a-f]{8}$`).MatchString(got) {
		t.Errorf("UIDL 1 = %q, want 00000001 + UIDVALIDITY in hex", got)
	}
}

func TestBadLogin(t *testing.T) {
	d := StartDovecot(t, alice)
	// Dovecot's anvil would delay the 2nd and later failures by seconds.
	for range 3 {
		c, err := imapclient.DialInsecure(d.IMAPAddr(), nil)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := c.Login("alice", "wrong").Wait(); err == nil {
			t.Fatal("login with a wrong password succeeded")
		}
		if el := time.Since(start); el > 2*time.Second {
			t.Errorf("failed login took %v; want no auth penalty", el)
		}
		c.Close()
	}
	d.Client(t, "alice") // the right password still works
}

func TestTLS(t *testing.T) {
	d := StartDovecot(t, alice, WithTLS(TLSOn))
	if d.IMAPSPort == 0 || d.POP3SPort == 0 || len(d.CertPEM) == 0 {
		t.Fatalf("TLS ports or certificate missing: %s", d)
	}
	// Implicit TLS, trusting CertPEM.
	c, err := imapclient.DialTLS(d.IMAPSAddr(), &imapclient.Options{TLSConfig: d.TLSConfig()})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login("alice", "alice-secret").Wait(); err != nil {
		t.Fatal(err)
	}
	c.Logout().Wait()
	c.Close()
	// The CA file on disk is the same certificate.
	pem, err := os.ReadFile(d.CertFile)
	if err != nil || string(pem) != string(d.CertPEM) {
		t.Fatalf("CertFile: %v", err)
	}
	// STARTTLS on the plain port, by host name.
	cfg := d.TLSConfig()
	cfg.ServerName = "localhost"
	c, err = imapclient.DialStartTLS(d.IMAPAddr(), &imapclient.Options{TLSConfig: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login("alice", "alice-secret").Wait(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	// POP3S greets.
	pc, err := tls.Dial("tcp", d.POP3SAddr(), d.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(pc).ReadString('\n')
	pc.Close()
	if err != nil || !strings.HasPrefix(line, "+OK") {
		t.Fatalf("POP3S greeting %q, %v", line, err)
	}
	// Without CertPEM the system roots refuse it.
	if _, err := tls.Dial("tcp", d.IMAPSAddr(), &tls.Config{}); !errors.As(err, new(x509.UnknownAuthorityError)) {
		t.Errorf("dial without the CA: %v, want unknown authority", err)
	}
}

func TestTLSUntrusted(t *testing.T) {
	for _, tc := range []struct {
		mode  TLSMode
		check func(error) bool
	}{
		{TLSWrongHost, func(err error) bool { return errors.As(err, new(x509.HostnameError)) }},
		{TLSExpired, func(err error) bool {
			var ce x509.CertificateInvalidError
			return errors.As(err, &ce) && ce.Reason == x509.Expired
		}},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			d := StartDovecot(t, alice, WithTLS(tc.mode))
			_, err := tls.Dial("tcp", d.IMAPSAddr(), d.TLSConfig())
			if !tc.check(err) {
				t.Fatalf("dial: %v", err)
			}
		})
	}
}

func TestEncodeMUTF7(t *testing.T) {
	for in, want := range map[string]string{
		"INBOX":    "INBOX",
		"Entwürfe": "Entw&APw-rfe",
		"a&b":      "a&-b",
		"日本語":      "&ZeVnLIqe-",
		"~peter":   "~peter",
		"😀 x":      "&2D3eAA- x",
	} {
		if got := encodeMUTF7(in); got != want {
			t.Errorf("encodeMUTF7(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFindDovecotMissing(t *testing.T) {
	if _, err := FindDovecot("no-such-dovecot-binary"); err == nil {
		t.Fatal("found a binary that does not exist")
	}
}

// TestSeed10k measures both ways of seeding 10,000 messages (1,000 with
// -short) and checks that they give the same mailbox.
func TestSeed10k(t *testing.T) {
	n := 10000
	if testing.Short() {
		n = 1000
	}
	d := StartDovecot(t, alice, bob)
	msgs := corpus.Generate(1, n, corpus.Options{})
	start := time.Now()
	d.Seed(t, "alice", msgs)
	appendTime := time.Since(start)
	start = time.Now()
	d.SeedFiles(t, "bob", msgs)
	filesTime := time.Since(start)
	t.Logf("%d messages: Seed (MULTIAPPEND) %v, SeedFiles (incl. STATUS check) %v", n, appendTime, filesTime)
	checkMailbox(t, d.Client(t, "alice"), msgs)
	checkMailbox(t, d.Client(t, "bob"), msgs)
}

func TestSeedBig(t *testing.T) {
	d := StartDovecot(t, alice, bob)
	msgs := corpus.Generate(5, 10, corpus.Options{BigAttachmentEvery: 5, BigAttachmentSize: 3 << 20})
	d.Seed(t, "alice", msgs)
	d.SeedFiles(t, "bob", msgs)
	checkMailbox(t, d.Client(t, "alice"), msgs)
	checkMailbox(t, d.Client(t, "bob"), msgs)
}

// TestSeedPlainIMAP has the Appender fall back to one APPEND per message
// with synchronizing literals, as against a server without MULTIAPPEND and
// LITERAL+.
func TestSeedPlainIMAP(t *testing.T) {
	d := StartDovecot(t, alice, WithConfig("imap_capability = IMAP4rev1 IDLE"))
	a, err := d.Appender("alice")
	if err != nil {
		t.Fatal(err)
	}
	if a.caps["MULTIAPPEND"] || a.caps["LITERAL+"] {
		t.Fatalf("capabilities %v; the override did not apply", a.caps)
	}
	msgs := corpus.Generate(9, 30, corpus.Options{BigAttachmentEvery: 10, BigAttachmentSize: 100 << 10})
	for _, m := range msgs {
		if err := a.Append(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	checkMailbox(t, d.Client(t, "alice"), msgs)
}

// TestNamespaceShape: WithNamespace and WithoutExtensions give a server
// whose folders live below "INBOX." (a top-level CREATE refused) and that
// announces none of the hidden extensions.
func TestNamespaceShape(t *testing.T) {
	d := StartDovecot(t, WithNamespace("INBOX.", '.'), WithoutExtensions())
	c := d.Client(t, DefaultUser.Name)
	ns, err := c.Namespace().Wait()
	if err != nil {
		t.Fatal(err)
	}
	if len(ns.Personal) != 1 || ns.Personal[0].Prefix != "INBOX." || ns.Personal[0].Delim != '.' {
		t.Fatalf("personal namespace %+v, want INBOX. with '.'", ns.Personal)
	}
	caps, err := c.Capability().Wait()
	if err != nil {
		t.Fatal(err)
	}
	for _, hidden := range append(HiddenExtensions, "ESORT", "CONTEXT=SEARCH") {
		if caps.Has(imap.Cap(hidden)) {
			t.Errorf("%s announced", hidden)
		}
	}
	for _, want := range []imap.Cap{imap.CapIMAP4rev1, imap.CapNamespace, imap.CapUIDPlus, imap.CapMultiAppend, imap.CapLiteralPlus} {
		if !caps.Has(want) {
			t.Errorf("%s not announced", want)
		}
	}
	if err := c.Create("Q1", nil).Wait(); err == nil {
		t.Error("top-level CREATE accepted")
	}
	if err := c.Create("INBOX.Archive", nil).Wait(); err != nil {
		t.Error(err)
	}
}

// TestStopStart: a stopped instance refuses connections, and Start brings
// it back on the same port with the same mail.
func TestStopStart(t *testing.T) {
	d := StartDovecot(t)
	msgs := corpus.Generate(3, 5, corpus.Options{})
	d.Seed(t, DefaultUser.Name, msgs)
	if err := d.Start(); err == nil {
		t.Fatal("Start of a running instance: no error")
	}
	addr := d.IMAPAddr()
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s accepts connections after Stop", addr)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	if d.IMAPAddr() != addr {
		t.Errorf("address after Start %s, want %s", d.IMAPAddr(), addr)
	}
	checkMailbox(t, d.Client(t, DefaultUser.Name), msgs)
	// Stop works again after Start (the cleanup stops it a second time).
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
}
