// grafana-schema strictly decodes a Grafana dashboard into the Go types of Grafana's own
// dashboard schema (grafana-foundation-sdk) and prints every field the schema marks
// required that is missing, every unknown field and every ill-typed value, one per line,
// naming the panel. It exits 1 if it printed anything: Grafana fills such gaps on import,
// provisioning tools and dashboard linters do not.
//
// Usage: grafana-schema DASHBOARD.json (- for stdin)
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// panelPath matches the index of a top-level panel in an error path ("panels[3].options…").
var panelPath = regexp.MustCompile(`^panels\[(\d+)\]\.?(.*)$`)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: grafana-schema DASHBOARD.json (- for stdin)")
		os.Exit(2)
	}
	problems, err := check(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "grafana-schema:", err)
		os.Exit(2)
	}
	for _, p := range problems {
		fmt.Println(p)
	}
	if len(problems) > 0 {
		os.Exit(1)
	}
}

func check(path string) ([]string, error) {
	var raw []byte
	var err error
	if path == "-" {
		raw, err = io.ReadAll(os.Stdin)
	} else {
		raw, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	// Panel options and fieldConfig are only checked against a panel type's schema when
	// that type's variant is registered: register every one the SDK ships.
	plugins.RegisterDefaultPlugins()

	// For naming panels in the report: their type and title as written.
	var loose struct {
		Panels []struct {
			Type  string `json:"type"`
			Title string `json:"title"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &loose); err != nil {
		return nil, fmt.Errorf("%s is not JSON: %w", path, err)
	}

	var dash dashboard.Dashboard
	err = dash.UnmarshalJSONStrict(raw)
	if err == nil {
		return nil, nil
	}
	var buildErrs cog.BuildErrors
	if !errors.As(err, &buildErrs) {
		return []string{"dashboard: " + err.Error()}, nil
	}
	problems := make([]string, 0, len(buildErrs))
	for _, be := range buildErrs {
		where := "dashboard"
		field := be.Path
		if m := panelPath.FindStringSubmatch(be.Path); m != nil {
			i, _ := strconv.Atoi(m[1])
			field = m[2]
			where = fmt.Sprintf("panel %d", i)
			if i < len(loose.Panels) {
				where = fmt.Sprintf("panel %d %q (%s)", i, loose.Panels[i].Title, loose.Panels[i].Type)
			}
		}
		problems = append(problems, fmt.Sprintf("%s: %s: %s", where, field, be.Message))
	}
	return problems, nil
}
