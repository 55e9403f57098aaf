package receiver

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/cockpit-cs/cockpit/alerts/notify/feishu"
	"github.com/cockpit-cs/cockpit/alerts/notify/wecom"
)

func TestFixtureDecodesStrictlyAndBuilds(t *testing.T) {
	raw, err := os.ReadFile("testdata/receivers.yml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	var cfgs []Config
	if err := dec.Decode(&cfgs); err != nil {
		t.Fatal(err)
	}
	wantKinds := []string{"webhook", "dingtalk", "wecom", "feishu", "email", "alertmanager"}
	for i, c := range cfgs {
		if c.Kind() != wantKinds[i] {
			t.Errorf("%s: kind %q", c.Name, c.Kind())
		}
		if _, err := New(c, nil, nil, nil); err != nil {
			t.Errorf("%s: %v", c.Name, err)
		}
	}
	if cfgs[0].Webhook.Timeout != 20*time.Second {
		t.Errorf("duration decoded as %v", cfgs[0].Webhook.Timeout)
	}
	// Dumping the configuration must not reveal secrets.
	out, err := yaml.Marshal(cfgs)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"TOKEN", "SECxyz", "KEY", "HOOK", "MfKQ9r8", "token=abc", "password: pw"} {
		if strings.Contains(string(out), s) {
			t.Errorf("marshalled config reveals %q:\n%s", s, out)
		}
	}
}

func TestUnknownFieldRejected(t *testing.T) {
	dec := yaml.NewDecoder(strings.NewReader("- name: x\n  webhook:\n    url: https://x\n    secrett: y\n"))
	dec.KnownFields(true)
	var cfgs []Config
	if err := dec.Decode(&cfgs); err == nil {
		t.Fatal("typo accepted")
	}
}

func TestValidate(t *testing.T) {
	for name, c := range map[string]Config{
		"no name": {},
		"none":    {Name: "x"},
		"two":     {Name: "x", Webhook: nil, WeCom: new(wecomCfg), Feishu: new(feishuCfg)},
		"invalid": {Name: "x", WeCom: new(wecomCfg)},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

type (
	wecomCfg  = wecom.Config
	feishuCfg = feishu.Config
)
