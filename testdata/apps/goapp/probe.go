package main

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// stateFile is name in the app's state directory ($STATE_DIRECTORY, which
// systemd makes), or in the working directory outside systemd.
func stateFile(name string) string {
	if d := os.Getenv("STATE_DIRECTORY"); d != "" {
		return filepath.Join(d, name)
	}
	return name
}

// probe tries what a hostile app would try and answers, for each attempt,
// "allowed" or "refused: why". The paths to try come in the query:
// ?own=FILE (its own code), keys=FILE (the deploy user's authorized_keys),
// other=FILE (another app's .env); ?write=TEXT appends TEXT to state.txt in
// the state directory and the answer carries the file's content.
func probe(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	res := map[string]string{}
	res["sudo"] = outcome(exec.Command("sudo", "-n", "true").Run())
	if f := q.Get("own"); f != "" {
		res["write_own_code"] = outcome(appendTo(f, ""))
	}
	if f := q.Get("keys"); f != "" {
		_, err := os.ReadFile(f)
		res["read_deploy_keys"] = outcome(err)
	}
	if f := q.Get("other"); f != "" {
		_, err := os.ReadFile(f)
		res["read_other_env"] = outcome(err)
	}
	if f := q.Get("apps"); f != "" {
		_, err := os.ReadDir(f)
		res["list_other_app"] = outcome(err)
	}
	if text := q.Get("write"); text != "" {
		res["write_state"] = outcome(appendTo(stateFile("state.txt"), text+"\n"))
	}
	data, _ := os.ReadFile(stateFile("state.txt"))
	res["state"] = string(data)
	res["user"] = os.Getenv("USER")
	if out, err := exec.Command("id", "-un").Output(); err == nil {
		res["user"] = strings.TrimSpace(string(out))
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(res)
}

func appendTo(name, text string) error {
	f, err := os.OpenFile(name, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func outcome(err error) string {
	if err != nil {
		return "refused: " + err.Error()
	}
	return "allowed"
}
