package api

import (
	"reflect"
	"testing"
)

// TestNewRequiresEveryDependency: New refuses a server with any required
// dependency missing, naming it, instead of answering 503 later.
func TestNewRequiresEveryDependency(t *testing.T) {
	var full Deps
	buildEnv(t, envOptions{deps: func(_ *env, d *Deps) { full = *d }})
	if _, err := New(Config{}, full); err != nil {
		t.Fatalf("complete deps refused: %v", err)
	}
	for _, name := range []string{"Store", "Keys", "Runner", "Sandboxes", "Security", "KeyAdmin", "Fleet",
		"ContainerLimits", "Metrics", "Data", "Logs", "CronStore", "Cron", "Codes"} {
		d := full
		reflect.ValueOf(&d).Elem().FieldByName(name).SetZero()
		_, err := New(Config{}, d)
		if err == nil || err.Error() != "api: missing dependencies: "+name {
			t.Errorf("without %s: New = %v", name, err)
		}
	}
}
