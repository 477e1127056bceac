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

package main

import (
	"errors"
	"fmt"

	"github.com/recpipeline/recpipeline/runtime/internal/quality"
	"github.com/recpipeline/recpipeline/runtime/internal/recclient"
)

// checkEvalFlags refuses the eval flags that quality.Evaluate would refuse,
// naming the flags; a flag given as 0 takes quality's default, as the
// Options field left at 0 does.
func checkEvalFlags(o *quality.Options) error {
	switch {
	case (o.Data == "") == (o.MovieLens == ""):
		return errors.New("give exactly one of -data and -movielens")
	case o.TestFrac < 0 || o.TestFrac >= 1:
		return fmt.Errorf("-test-frac %g must be in (0, 1)", o.TestFrac)
	case o.K < 0:
		return fmt.Errorf("-k %d must be positive", o.K)
	case o.Users < 0:
		return fmt.Errorf("-users %d must not be negative", o.Users)
	case o.Concurrency < 0 || o.Concurrency > 256:
		return fmt.Errorf("-concurrency %d must be between 1 and 256", o.Concurrency)
	case o.Batch < 0 || o.Batch > recclient.MaxEvents:
		return fmt.Errorf("-batch %d must be between 1 and %d", o.Batch, recclient.MaxEvents)
	}
	_, err := baseURL(o.URL)
	return err
}
