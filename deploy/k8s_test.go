package deploy

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/dmshub/dmsrouter/config"
)

// documentSeparator splits a YAML stream into its documents.
var documentSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// manifests is k8s/dmsrouter.yaml decoded strictly into the Kubernetes
// API types, one field per kind it holds.
type manifests struct {
	configMap  *corev1.ConfigMap
	deployment *appsv1.Deployment
	service    *corev1.Service
	pdb        *policyv1.PodDisruptionBudget
	job        *batchv1.Job
}

// decodeManifests decodes text, a stream of Kubernetes objects, as the API
// server does (sigs.k8s.io/json, case-sensitive and strict), refusing a
// field the API types do not have (a typo such as readinesProbe, or
// mountpath, which encoding/json would match case-insensitively), a field
// given twice, or a kind this file should not hold.
func decodeManifests(text string) (manifests, error) {
	var m manifests
	for i, doc := range documentSeparator.Split(text, -1) {
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			return m, fmt.Errorf("document %d: %w", i+1, err)
		}
		if head.Kind == "" {
			continue // comments only
		}
		var obj any
		switch head.APIVersion + " " + head.Kind {
		case "v1 ConfigMap":
			m.configMap = new(corev1.ConfigMap)
			obj = m.configMap
		case "apps/v1 Deployment":
			m.deployment = new(appsv1.Deployment)
			obj = m.deployment
		case "v1 Service":
			m.service = new(corev1.Service)
			obj = m.service
		case "policy/v1 PodDisruptionBudget":
			m.pdb = new(policyv1.PodDisruptionBudget)
			obj = m.pdb
		case "batch/v1 Job":
			m.job = new(batchv1.Job)
			obj = m.job
		default:
			return m, fmt.Errorf("document %d: unexpected object %s %s", i+1, head.APIVersion, head.Kind)
		}
		j, err := yaml.YAMLToJSONStrict([]byte(doc))
		if err != nil {
			return m, fmt.Errorf("document %d: %w", i+1, err)
		}
		strict, err := kjson.UnmarshalStrict(j, obj, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
		if err = errors.Join(append(strict, err)...); err != nil {
			return m, fmt.Errorf("document %d: %w", i+1, err)
		}
	}
	return m, nil
}

// TestManifestsDecodeStrictly decodes k8s/dmsrouter.yaml into the
// Kubernetes API types, and checks that a misspelt field fails.
func TestManifestsDecodeStrictly(t *testing.T) {
	text := readText(t, "k8s/dmsrouter.yaml")
	for _, tc := range []struct {
		name   string
		edit   func(string) string
		wantOK bool
	}{
		{"as shipped", func(s string) string { return s }, true},
		{"readinesProbe", func(s string) string { return strings.Replace(s, "readinessProbe:", "readinesProbe:", 1) }, false},
		{"mountpath", func(s string) string { return strings.Replace(s, "mountPath:", "mountpath:", 1) }, false},
		{"replicas as a string", func(s string) string { return strings.Replace(s, "replicas: 3", `replicas: "3"`, 1) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			edited := tc.edit(text)
			if !tc.wantOK && edited == text {
				t.Fatal("the edit changed nothing")
			}
			_, err := decodeManifests(edited)
			if tc.wantOK && err != nil {
				t.Errorf("decode = %v, want nil", err)
			}
			if !tc.wantOK && err == nil {
				t.Error("decode = nil, want an error")
			}
		})
	}
}

// TestManifestsServe checks what the manifests promise beyond their
// types: every object is there, the configuration is a real one that
// config.Load accepts, it is mounted as a directory (a subPath mount
// never sees a ConfigMap update), the key file lies where the Secret is
// mounted, and the drain fits in the termination grace period.
func TestManifestsServe(t *testing.T) {
	m, err := decodeManifests(readText(t, "k8s/dmsrouter.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if m.configMap == nil || m.deployment == nil || m.service == nil || m.pdb == nil || m.job == nil {
		t.Fatalf("k8s/dmsrouter.yaml lacks an object: %+v", m)
	}
	data, ok := m.configMap.Data["config.yaml"]
	if !ok {
		t.Fatalf("ConfigMap %s has no config.yaml", m.configMap.Name)
	}
	file := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(file, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file, func(string) string { return "" })
	if err != nil {
		t.Fatalf("the ConfigMap's config.yaml: %v", err)
	}
	if len(cfg.ShardMap.Shards) == 0 {
		t.Error("the ConfigMap's config.yaml has no shard")
	}
	// It is configs/example.prod.yaml but for where the key file lies and
	// the drain: keep them in step.
	prod, err := config.Load("../configs/example.prod.yaml", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.ShardMap, prod.ShardMap) || !reflect.DeepEqual(cfg.National, prod.National) || !reflect.DeepEqual(cfg.Jobs, prod.Jobs) {
		t.Error("the ConfigMap's config.yaml and configs/example.prod.yaml differ in their shards, database, national or jobs settings")
	}

	grace := 30 * time.Second // the Kubernetes default
	if g := m.deployment.Spec.Template.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = time.Duration(*g) * time.Second
	}
	if grace <= cfg.Server.DrainDelay+cfg.Server.ShutdownTimeout {
		t.Errorf("terminationGracePeriodSeconds %s is not above server.drain_delay %s + server.shutdown_timeout %s", grace, cfg.Server.DrainDelay, cfg.Server.ShutdownTimeout)
	}
	if cfg.Server.DrainDelay == 0 {
		t.Error("server.drain_delay is 0: the readiness probe would not see the pod draining")
	}

	pods := map[string]corev1.PodSpec{"Deployment": m.deployment.Spec.Template.Spec, "Job": m.job.Spec.Template.Spec}
	for kind, pod := range pods {
		t.Run(kind, func(t *testing.T) {
			volumes := map[string]corev1.Volume{}
			for _, v := range pod.Volumes {
				volumes[v.Name] = v
			}
			c := pod.Containers[0]
			i := slices.Index(c.Args, "--config")
			if i < 0 || i+1 == len(c.Args) {
				t.Fatalf("%s args %q name no --config", kind, c.Args)
			}
			mounted := map[string]string{} // file path in the container -> where it comes from
			for _, vm := range c.VolumeMounts {
				if vm.SubPath != "" {
					t.Errorf("%s mounts %s with subPath %s: updates never reach a subPath mount", kind, vm.MountPath, vm.SubPath)
				}
				v, ok := volumes[vm.Name]
				if !ok {
					t.Errorf("%s mounts volume %s, which the pod does not have", kind, vm.Name)
					continue
				}
				switch {
				case v.ConfigMap != nil && v.ConfigMap.Name == m.configMap.Name:
					for key := range m.configMap.Data {
						mounted[path.Join(vm.MountPath, key)] = "ConfigMap " + key
					}
				case v.Secret != nil:
					mounted[path.Join(vm.MountPath, "*")] = "Secret " + v.Secret.SecretName
				}
			}
			if got := mounted[c.Args[i+1]]; got != "ConfigMap config.yaml" {
				t.Errorf("%s reads %s, which is not the ConfigMap's config.yaml (mounts: %v)", kind, c.Args[i+1], mounted)
			}
			if key := cfg.Auth.PublicKeyFile; key != "" && mounted[path.Join(path.Dir(key), "*")] == "" {
				t.Errorf("%s: auth.public_key_file %s lies in no mounted Secret (mounts: %v)", kind, key, mounted)
			}
		})
	}
}

// readText returns the content of the file at path, failing t.
func readText(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
