package email

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// selfSigned makes a certificate for 127.0.0.1 and localhost and writes it
// as a PEM file the notifier can trust through ca_file.
func selfSigned(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "cockpit test smtpd"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, path
}

// smtpd is a tiny ESMTP server: EHLO, STARTTLS, AUTH PLAIN and LOGIN,
// MAIL, RCPT, DATA, RSET, NOOP, QUIT. Replies can be overridden per verb
// to inject failures.
type smtpd struct {
	t        *testing.T
	ln       net.Listener
	cert     tls.Certificate
	implicit bool   // the listener speaks TLS from the start
	startTLS bool   // offer STARTTLS
	authMech string // offered AUTH mechanisms, "" for none
	user     string
	pass     string
	greeting string            // default "220 smtpd ESMTP"
	replies  map[string]string // verb → reply replacing the success reply

	mu       sync.Mutex
	sessions []*session
	wg       sync.WaitGroup
}

// session is what one connection did.
type session struct {
	TLS       bool
	AuthTLS   bool // TLS was on when AUTH succeeded
	AuthUser  string
	AuthMech  string
	MailFrom  string
	RcptTo    []string
	Data      []byte
	Delivered bool
}

func (s *smtpd) start() string {
	s.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.t.Fatal(err)
	}
	if s.implicit {
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{s.cert}})
	}
	s.ln = ln
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serve(c)
			}()
		}
	}()
	s.t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return ln.Addr().String()
}

func (s *smtpd) last() *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.sessions) == 0 {
		return nil
	}
	return s.sessions[len(s.sessions)-1]
}

func (s *smtpd) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	sess := &session{TLS: s.implicit}
	s.mu.Lock()
	s.sessions = append(s.sessions, sess)
	s.mu.Unlock()

	tp := textproto.NewConn(c)
	reply := func(line string) { _ = tp.PrintfLine("%s", line) }
	if s.greeting != "" {
		reply(s.greeting)
		if !strings.HasPrefix(s.greeting, "2") {
			return
		}
	} else {
		reply("220 smtpd ESMTP")
	}
	override := func(verb string) bool {
		if r, ok := s.replies[verb]; ok {
			reply(r)
			return true
		}
		return false
	}
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		verb = strings.ToUpper(verb)
		switch verb {
		case "EHLO", "HELO":
			lines := []string{"smtpd greets " + arg}
			if s.startTLS && !sess.TLS {
				lines = append(lines, "STARTTLS")
			}
			if s.authMech != "" {
				lines = append(lines, "AUTH "+s.authMech)
			}
			lines = append(lines, "8BITMIME")
			for i, l := range lines {
				sep := "-"
				if i == len(lines)-1 {
					sep = " "
				}
				reply("250" + sep + l)
			}
		case "STARTTLS":
			if !s.startTLS || sess.TLS {
				reply("503 5.5.1 not now")
				continue
			}
			reply("220 2.0.0 ready to start TLS")
			tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{s.cert}})
			if err := tc.Handshake(); err != nil {
				return
			}
			c = tc
			tp = textproto.NewConn(tc)
			sess.TLS = true
		case "AUTH":
			if override("AUTH") {
				continue
			}
			mech, initial, _ := strings.Cut(arg, " ")
			var user, pass string
			switch strings.ToUpper(mech) {
			case "PLAIN":
				if initial == "" {
					reply("334 ")
					initial, _ = tp.ReadLine()
				}
				raw, _ := base64.StdEncoding.DecodeString(initial)
				parts := strings.Split(string(raw), "\x00")
				if len(parts) == 3 {
					user, pass = parts[1], parts[2]
				}
			case "LOGIN":
				reply("334 " + base64.StdEncoding.EncodeToString([]byte("Username:")))
				u, _ := tp.ReadLine()
				reply("334 " + base64.StdEncoding.EncodeToString([]byte("Password:")))
				p, _ := tp.ReadLine()
				ub, _ := base64.StdEncoding.DecodeString(u)
				pb, _ := base64.StdEncoding.DecodeString(p)
				user, pass = string(ub), string(pb)
			default:
				reply("504 5.5.4 unrecognized mechanism")
				continue
			}
			if user != s.user || pass != s.pass {
				reply("535 5.7.8 authentication credentials invalid")
				continue
			}
			sess.AuthUser, sess.AuthMech, sess.AuthTLS = user, strings.ToUpper(mech), sess.TLS
			reply("235 2.7.0 authentication successful")
		case "MAIL":
			if override("MAIL") {
				continue
			}
			sess.MailFrom = strings.TrimPrefix(arg, "FROM:")
			reply("250 2.1.0 ok")
		case "RCPT":
			if override("RCPT") {
				continue
			}
			sess.RcptTo = append(sess.RcptTo, strings.TrimPrefix(arg, "TO:"))
			reply("250 2.1.5 ok")
		case "DATA":
			reply("354 end data with <CR><LF>.<CR><LF>")
			data, err := tp.ReadDotBytes()
			if err != nil {
				return
			}
			if override("DATA") {
				continue
			}
			// ReadDotBytes turns CRLF into LF; put the wire form back.
			sess.Data = []byte(strings.ReplaceAll(string(data), "\n", "\r\n"))
			sess.Delivered = true
			reply("250 2.0.0 queued")
		case "RSET", "NOOP":
			reply("250 2.0.0 ok")
		case "QUIT":
			reply("221 2.0.0 bye")
			return
		default:
			reply("502 5.5.2 command not recognized")
		}
	}
}

// silent accepts connections and never speaks, for timeout tests.
func silent(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				r := bufio.NewReader(c)
				go func() { <-done; c.Close() }()
				_, _ = r.ReadByte() // until the client gives up
			}()
		}
	}()
	t.Cleanup(func() {
		close(done)
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}
