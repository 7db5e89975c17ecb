package remote_test

import (
	"context"
	"strings"
	"testing"

	"github.com/raijin-deploy/raijin/remote"
	"github.com/raijin-deploy/raijin/secrets"
)

// A remote command line that holds a secret value is refused before it is
// sent: command lines show in the server's process list.
func TestRunRefusesSecretsOnTheCommandLine(t *testing.T) {
	r := &secrets.Redactor{}
	r.Add("hunter2-topsecret")
	rec := &remote.Recorder{HostName: "web1"}
	h := remote.NewSession(rec, nil, r, nil)
	_, err := h.Run(context.Background(), "curl -H 'Authorization: hunter2-topsecret' x", remote.RunOpts{})
	if err == nil || !strings.Contains(err.Error(), "process list") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("want a refusal that does not repeat the secret, got %v", err)
	}
	_, err = h.Run(context.Background(), "true", remote.RunOpts{Env: map[string]string{"TOKEN": "hunter2-topsecret"}})
	if err == nil {
		t.Fatal("a secret passed in opts.env reached the command line")
	}
	if len(rec.Steps) != 0 {
		t.Fatalf("refused commands were sent: %v", rec.Steps)
	}
}
