package api

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaultsAndValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
	var zero Config
	zero.setDefaults()
	if !reflect.DeepEqual(zero, DefaultConfig()) {
		t.Errorf("a zero Config with its defaults = %+v, want DefaultConfig() %+v", zero, DefaultConfig())
	}
	bad := DefaultConfig()
	bad.MaxBodyBytes = 100
	bad.LogPingInterval = -time.Second
	bad.EditorFrameAncestors = []string{"https://a.example; script-src *"}
	err := bad.Validate()
	if err == nil {
		t.Fatal("a 100-byte body limit, a negative ping interval and a CSP injection were accepted")
	}
	for _, want := range []string{"max body bytes 100", "log ping interval", "editor frame ancestor"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error %q does not mention %q", err, want)
		}
	}
}
