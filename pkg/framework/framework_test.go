package framework

import (
	"errors"
	"fmt"
	"testing"
)

func TestRegistryRefusesBadAndDuplicateTypes(t *testing.T) {
	r := NewRegistry()
	ok := JobType{Name: "a", NewMaster: func(MasterHandle) (JobMaster, error) { return nil, nil },
		Workers: map[string]func(WorkerHandle) (Worker, error){"a-w": nil}}
	if err := r.Register(ok); err != nil {
		t.Fatal(err)
	}
	for name, jt := range map[string]JobType{
		"duplicate":     ok,
		"bad name":      {Name: "a.b", NewMaster: ok.NewMaster},
		"no master":     {Name: "b"},
		"worker reused": {Name: "c", NewMaster: ok.NewMaster, Workers: map[string]func(WorkerHandle) (Worker, error){"a-w": nil}},
	} {
		if err := r.Register(jt); err == nil {
			t.Errorf("%s: registered", name)
		}
	}
	if _, found := r.WorkerFactory("a-w"); !found {
		t.Error("worker type not found")
	}
	if got := fmt.Sprint(r.Names()); got != "[a]" {
		t.Errorf("names %s", got)
	}
}

func TestPermanent(t *testing.T) {
	base := errors.New("bad config")
	p := Permanent(fmt.Errorf("wrap: %w", base))
	if !IsPermanent(p) || !errors.Is(p, base) {
		t.Fatal("Permanent lost its cause or its mark")
	}
	if IsPermanent(base) || Permanent(nil) != nil {
		t.Fatal("unmarked error reported permanent")
	}
	if !IsPermanent(fmt.Errorf("outer: %w", p)) {
		t.Fatal("mark lost through wrapping")
	}
}

func TestDecodeConfigIsStrict(t *testing.T) {
	type cfg struct {
		N    int    `json:"n"`
		Name string `json:"name"`
	}
	for _, tc := range []struct {
		raw     string
		want    cfg
		wantErr bool
	}{
		{raw: ``, want: cfg{N: 7}},
		{raw: `null`, want: cfg{N: 7}},
		{raw: ` {"n": 2} `, want: cfg{N: 2}},
		{raw: `{"name":"x"}`, want: cfg{N: 7, Name: "x"}},
		{raw: `{"nn": 2}`, wantErr: true},
		{raw: `{"n": "2"}`, wantErr: true},
		{raw: `{"n": 2}{"n": 3}`, wantErr: true},
		{raw: `{"n": 2} x`, wantErr: true},
		{raw: `[1]`, wantErr: true},
	} {
		t.Run(tc.raw, func(t *testing.T) {
			c := cfg{N: 7}
			err := DecodeConfig([]byte(tc.raw), &c)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if !tc.wantErr && c != tc.want {
				t.Fatalf("decoded %+v, want %+v", c, tc.want)
			}
		})
	}
}
