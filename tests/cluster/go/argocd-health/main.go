// argocd-health runs ModelOps' health checks through Argo CD's own code: the argocd-cm
// ConfigMap is parsed by Argo CD's SettingsManager (as the application controller does,
// label selector included), and each sample object is assessed by gitops-engine's
// health.GetResourceHealth with lua.ResourceHealthOverrides, which runs the script in
// gopher-lua inside Argo CD's sandbox.
//
// Usage: argocd-health ARGOCD_CM.yaml SAMPLES.json
// SAMPLES.json is a list of {"name": ..., "obj": {...}}; the output is the same list, in
// order, as JSON with "status", "message" and "error" per sample.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/argoproj/gitops-engine/pkg/health"
	log "github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/yaml"

	"github.com/argoproj/argo-cd/v3/util/lua"
	"github.com/argoproj/argo-cd/v3/util/settings"
)

type sample struct {
	Name string         `json:"name"`
	Obj  map[string]any `json:"obj"`
}

type result struct {
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message"`
	Error   string `json:"error,omitempty"`
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: argocd-health ARGOCD_CM.yaml SAMPLES.json (- for stdin)")
		os.Exit(2)
	}
	log.SetOutput(io.Discard) // the settings manager logs at info level; our output is the JSON
	if err := run(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "argocd-health:", err)
		os.Exit(1)
	}
}

func run(cmPath, samplesPath string) error {
	raw, err := os.ReadFile(cmPath)
	if err != nil {
		return err
	}
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(raw, &cm); err != nil {
		return fmt.Errorf("%s: %w", cmPath, err)
	}
	// The ConfigMap reaches Argo CD's settings code through a client-go clientset, as in a
	// cluster; the settings manager's informer only sees it if it carries Argo CD's labels.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mgr := settings.NewSettingsManager(ctx, fake.NewClientset(&cm), cm.Namespace)
	overrides, err := mgr.GetResourceOverrides()
	if err != nil {
		return fmt.Errorf("argo cd refused %s: %w", cmPath, err)
	}

	var data []byte
	if samplesPath == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(samplesPath)
	}
	if err != nil {
		return err
	}
	var samples []sample
	if err := json.Unmarshal(data, &samples); err != nil {
		return fmt.Errorf("%s: %w", samplesPath, err)
	}
	out := make([]result, 0, len(samples))
	for _, s := range samples {
		r := result{Name: s.Name}
		hs, err := health.GetResourceHealth(&unstructured.Unstructured{Object: s.Obj}, lua.ResourceHealthOverrides(overrides))
		switch {
		case err != nil:
			r.Error = err.Error()
		case hs == nil:
			r.Error = "no health check applies to this object"
		default:
			r.Status, r.Message = string(hs.Status), hs.Message
		}
		out = append(out, r)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
