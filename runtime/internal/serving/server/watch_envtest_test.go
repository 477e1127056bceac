/*
Copyright 2026 The RecPipeline Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package server

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/recpipeline/recpipeline/runtime/config"
)

// TestConfigMapSourceWithTheRuntimeRole watches a ConfigMap through a real
// API server as a user that holds only what the operator grants the stage
// pods: get and watch on that one ConfigMap.
func TestConfigMapSourceWithTheRuntimeRole(t *testing.T) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("KUBEBUILDER_ASSETS is not set: run the tests with make test")
		}
		t.Skip("KUBEBUILDER_ASSETS is not set: run the tests with make test")
	}
	env := &envtest.Environment{}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("failed to start envtest: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	admin := kubernetes.NewForConfigOrDie(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	const ns, name = "recs", "explore-config"
	mustCreate := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err = admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	mustCreate(err)
	_, err = admin.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Data:       map[string]string{config.ConfigKey: "first"},
	}, metav1.CreateOptions{})
	mustCreate(err)
	// Another ConfigMap the runtime must not be able to read.
	_, err = admin.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "other"}}, metav1.CreateOptions{})
	mustCreate(err)
	_, err = admin.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "explore-runtime"},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{""}, Resources: []string{"configmaps"},
			ResourceNames: []string{name}, Verbs: []string{"get", "watch"},
		}},
	}, metav1.CreateOptions{})
	mustCreate(err)
	_, err = admin.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "explore-runtime"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "explore-runtime"},
		Subjects:   []rbacv1.Subject{{Kind: "User", Name: "recserve"}},
	}, metav1.CreateOptions{})
	mustCreate(err)

	user, err := env.AddUser(envtest.User{Name: "recserve"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	limited := kubernetes.NewForConfigOrDie(user.Config())
	if _, err := limited.CoreV1().ConfigMaps(ns).Get(ctx, "other", metav1.GetOptions{}); err == nil {
		t.Fatal("the runtime's user can read another ConfigMap; the test's RBAC is wrong")
	}

	got := make(chan string, 10)
	src := &ConfigMapSource{Client: limited, Namespace: ns, Name: name, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	go func() { _ = src.Watch(ctx, func(b []byte) { got <- string(b) }) }()
	expect := func(want string) {
		t.Helper()
		select {
		case v := <-got:
			if v != want {
				t.Fatalf("delivered %q, want %q", v, want)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("%q not delivered", want)
		}
	}
	expect("first")
	for _, v := range []string{"second", "third"} {
		cm, err := admin.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cm.Data[config.ConfigKey] = v
		if _, err := admin.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		expect(v)
	}
}
