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

package controllers

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// CacheOptions restricts the manager's cache to the objects the operator
// manages (children and stage pods carry the managed-by label), so that its
// memory does not grow with every ConfigMap and pod in the cluster, and to
// namespaces when any are given.
func CacheOptions(namespaces []string) (cache.Options, error) {
	selector, err := labels.Parse(labelManagedBy + "=" + ManagedByValue)
	if err != nil {
		return cache.Options{}, fmt.Errorf("failed to parse the children's label selector: %w", err)
	}
	managed := cache.ByObject{Label: selector}
	opts := cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.ConfigMap{}:                      managed,
		&corev1.Service{}:                        managed,
		&corev1.ServiceAccount{}:                 managed,
		&corev1.Pod{}:                            managed,
		&rbacv1.Role{}:                           managed,
		&rbacv1.RoleBinding{}:                    managed,
		&appsv1.Deployment{}:                     managed,
		&autoscalingv2.HorizontalPodAutoscaler{}: managed,
		&policyv1.PodDisruptionBudget{}:          managed,
		&networkingv1.NetworkPolicy{}:            managed,
		&batchv1.CronJob{}:                       managed,
		&batchv1.Job{}:                           managed,
	}}
	if len(namespaces) > 0 {
		opts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range namespaces {
			opts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return opts, nil
}
