package notify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestSecretNeverPrints(t *testing.T) {
	s := Secret("hunter2")
	u := SecretURL("https://oapi.dingtalk.com/robot/send?access_token=hunter2")
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "s", s, "u", u)
	js, _ := json.Marshal(struct {
		S Secret
		U SecretURL
	}{s, u})
	for _, out := range []string{fmt.Sprint(s, u), fmt.Sprintf("%v %+v %#v %s", s, u, s, u), logs.String(), string(js)} {
		if strings.Contains(out, "hunter2") {
			t.Errorf("leak: %s", out)
		}
	}
	if got := u.String(); got != "https://oapi.dingtalk.com/<secret>" {
		t.Errorf("SecretURL prints %q", got)
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"":                                  "",
		"https://h.example.com":             "https://h.example.com",
		"https://h.example.com/":            "https://h.example.com",
		"https://h/open-apis/bot/v2/hook/x": "https://h/<secret>",
		"http://u:p@h:8080/?key=k":          "http://h:8080/<secret>",
		"not a url with key=secret":         "<secret>",
		"https://h/%zz":                     "<secret>",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
