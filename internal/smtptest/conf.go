package smtptest

import (
	"fmt"
	"path/filepath"
	"strings"
)

// hostname is every relay's myhostname (in its Received fields and
// banner).
const hostname = "relay.smtptest.invalid"

// mainCF is the relay's main.cf.
func (r *Relay) mainCF() string {
	utf8 := "yes"
	if r.opts.NoSMTPUTF8 {
		utf8 = "no"
	}
	var b strings.Builder
	set := func(k, v string) { fmt.Fprintf(&b, "%s = %s\n", k, v) }
	set("compatibility_level", "3.6")
	set("queue_directory", filepath.Join(r.Dir, "queue"))
	set("data_directory", filepath.Join(r.Dir, "data"))
	set("mail_owner", "postfix")
	set("setgid_group", "postdrop")
	set("syslog_name", "smtptest")
	set("maillog_file", filepath.Join(r.Dir, "maillog"))
	set("maillog_file_prefixes", r.Dir)
	set("myhostname", hostname)
	set("mydomain", "smtptest.invalid")
	set("myorigin", "$myhostname")
	set("mydestination", "")
	set("relay_domains", "")
	set("local_recipient_maps", "")
	set("alias_maps", "")
	set("alias_database", "")
	set("inet_interfaces", "127.0.0.1")
	set("inet_protocols", "ipv4")
	set("mynetworks", "127.0.0.1/32")
	set("biff", "no")
	set("notify_classes", "")
	set("local_header_rewrite_clients", "")
	// Keep every header field as sent (Postfix drops Bcc by default): a
	// client that leaks Bcc must show it in Delivered.
	set("message_drop_headers", "")
	set("smtpd_peername_lookup", "no")
	set("smtputf8_enable", utf8)
	set("message_size_limit", "104857600")
	// Relaying only after AUTH; AUTH only after TLS.
	set("smtpd_relay_restrictions", "permit_sasl_authenticated, reject_unauth_destination")
	set("smtpd_recipient_restrictions", fmt.Sprintf("check_policy_service inet:127.0.0.1:%d", r.policy.port()))
	set("smtpd_sasl_auth_enable", "yes")
	set("smtpd_sasl_type", "dovecot")
	set("smtpd_sasl_path", fmt.Sprintf("inet:127.0.0.1:%d", r.auth.port()))
	set("smtpd_sasl_security_options", "noanonymous")
	set("smtpd_tls_security_level", "may")
	set("smtpd_tls_auth_only", "yes")
	set("smtpd_tls_chain_files", filepath.Join(r.Dir, "etc", "key.pem")+", "+filepath.Join(r.Dir, "etc", "cert.pem"))
	// Fast failures: tests make many on purpose.
	set("smtpd_error_sleep_time", "0")
	set("smtpd_soft_error_limit", "1000")
	set("smtpd_hard_error_limit", "1000")
	set("smtpd_client_connection_count_limit", "0")
	set("smtpd_client_connection_rate_limit", "0")
	set("smtpd_client_message_rate_limit", "0")
	set("smtpd_client_recipient_rate_limit", "0")
	set("smtpd_client_auth_rate_limit", "0")
	// Every accepted message goes to the sink, retried quickly if it fails.
	sinkNext := fmt.Sprintf("smtp:[127.0.0.1]:%d", r.sink.port())
	set("default_transport", sinkNext)
	set("relay_transport", sinkNext)
	set("smtp_tls_security_level", "none")
	set("smtp_sasl_auth_enable", "no")
	set("queue_run_delay", "1s")
	set("minimal_backoff_time", "1s")
	set("maximal_backoff_time", "2s")
	set("delay_warning_time", "0")
	return b.String()
}

// smtpdSocket is where Postfix's smtpd listens (behind Port), relative to
// the queue directory: a UNIX socket, so that no TCP port can be taken
// by someone else between choosing it and Postfix binding it.
const smtpdSocket = "public/smtpd"

// masterCF is the relay's master.cf: the SMTP service on smtpdSocket, and
// the daemons it needs, none chrooted.
func (r *Relay) masterCF() string {
	var b strings.Builder
	b.WriteString("smtpd unix n - n - - smtpd\n")
	if r.opts.ImplicitTLS {
		b.WriteString("  -o smtpd_tls_wrappermode=yes\n  -o smtpd_tls_security_level=encrypt\n")
	}
	b.WriteString(`cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
`)
	return b.String()
}
