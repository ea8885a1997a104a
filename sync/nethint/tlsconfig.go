package nethint

import (
	"crypto/tls"
	"net"
)

// TLSConfig is the TLS configuration for a connection to addr (host:port,
// or a host), the one place postfach makes one (IMAP and POP3): base
// (nil: the system roots) with at least TLS 1.2 and, where base names no
// server, ServerName the host of addr (the name the certificate must
// carry). base is not modified.
func TLSConfig(addr string, base *tls.Config) *tls.Config {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if base == nil {
		return &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	cfg := base.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS12
	}
	return cfg
}
