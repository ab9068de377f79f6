// provisioner is the test cluster's storage provisioner: for every
// PersistentVolumeClaim of its StorageClass it makes a directory under --dir
// on this host and a hostPath PersistentVolume bound to the claim; when a
// claim is deleted (PV Released, reclaim policy Delete) it removes both.
//
// It runs as a host process, not in a pod, so it works the same for kwok's
// fake nodes (where no pod ever runs: rancher's local-path-provisioner, which
// makes directories through helper pods, never gets past them there) and for
// the real node, which is this host. Every node of the test cluster is this
// one machine, so the PVs carry no node affinity.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

// The PV controller writes this annotation on a claim once it knows which
// external provisioner must serve it (the claim's class names it).
const (
	annProvisioner = "volume.kubernetes.io/storage-provisioner"
	annProvisioned = "pv.kubernetes.io/provisioned-by"
)

type provisioner struct {
	client kubernetes.Interface
	name   string
	dir    string
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the cluster")
	name := flag.String("name", "kontinuum.dev/hostpath", "provisioner name, as in the StorageClass")
	dir := flag.String("dir", "", "host directory under which volumes are made")
	flag.Parse()
	if *kubeconfig == "" || *dir == "" {
		log.Fatal("usage: provisioner --kubeconfig FILE --dir DIR [--name NAME]")
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		log.Fatalf("--dir %s: %v", *dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		log.Fatalf("--dir %s: %v", abs, err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		log.Fatalf("--kubeconfig %s: %v", *kubeconfig, err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		log.Fatalf("client: %v", err)
	}
	p := &provisioner{client: client, name: *name, dir: abs}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// The periodic resync retries whatever failed (an API hiccup, a conflict)
	// without a work queue: this serves a handful of test claims.
	factory := informers.NewSharedInformerFactory(client, 3*time.Second)
	claims := factory.Core().V1().PersistentVolumeClaims().Informer()
	volumes := factory.Core().V1().PersistentVolumes().Informer()
	onClaim := func(obj any) {
		if c, ok := obj.(*corev1.PersistentVolumeClaim); ok {
			p.report(p.provision(ctx, c))
		}
	}
	onVolume := func(obj any) {
		if v, ok := obj.(*corev1.PersistentVolume); ok {
			p.report(p.reclaim(ctx, v))
		}
	}
	if _, err := claims.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    onClaim,
		UpdateFunc: func(_, obj any) { onClaim(obj) },
	}); err != nil {
		log.Fatalf("claim handler: %v", err)
	}
	if _, err := volumes.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    onVolume,
		UpdateFunc: func(_, obj any) { onVolume(obj) },
	}); err != nil {
		log.Fatalf("volume handler: %v", err)
	}
	factory.Start(ctx.Done())
	log.Printf("provisioner %s: volumes under %s", p.name, p.dir)
	<-ctx.Done()
	factory.Shutdown()
}

func (p *provisioner) report(err error) {
	if err != nil {
		log.Print(err)
	}
}

func pvName(c *corev1.PersistentVolumeClaim) string { return "pvc-" + string(c.UID) }

func (p *provisioner) provision(ctx context.Context, c *corev1.PersistentVolumeClaim) error {
	if c.Annotations[annProvisioner] != p.name || c.Spec.VolumeName != "" ||
		c.Status.Phase != corev1.ClaimPending || c.DeletionTimestamp != nil {
		return nil
	}
	name := pvName(c)
	path := filepath.Join(p.dir, fmt.Sprintf("%s_%s_%s", c.Namespace, c.Name, name))
	// 0777: pods of any user (the chart runs non-root) write to the volume.
	if err := os.MkdirAll(path, 0o777); err != nil {
		return fmt.Errorf("claim %s/%s: %w", c.Namespace, c.Name, err)
	}
	if err := os.Chmod(path, 0o777); err != nil {
		return fmt.Errorf("claim %s/%s: %w", c.Namespace, c.Name, err)
	}
	storage, ok := c.Spec.Resources.Requests[corev1.ResourceStorage]
	if !ok {
		return fmt.Errorf("claim %s/%s requests no storage", c.Namespace, c.Name)
	}
	class := ""
	if c.Spec.StorageClassName != nil {
		class = *c.Spec.StorageClassName
	}
	dirType := corev1.HostPathDirectory
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{annProvisioned: p.name},
		},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: storage},
			AccessModes:                   c.Spec.AccessModes,
			VolumeMode:                    c.Spec.VolumeMode,
			StorageClassName:              class,
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
			// A claimRef with the claim's uid makes the PV controller bind
			// exactly this claim to it, and no other.
			ClaimRef: &corev1.ObjectReference{
				Kind: "PersistentVolumeClaim", APIVersion: "v1",
				Namespace: c.Namespace, Name: c.Name, UID: c.UID,
			},
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: path, Type: &dirType},
			},
		},
	}
	_, err := p.client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("claim %s/%s: create %s: %w", c.Namespace, c.Name, name, err)
	}
	log.Printf("claim %s/%s: created %s at %s", c.Namespace, c.Name, name, path)
	return nil
}

func (p *provisioner) reclaim(ctx context.Context, v *corev1.PersistentVolume) error {
	if v.Annotations[annProvisioned] != p.name || v.Status.Phase != corev1.VolumeReleased ||
		v.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete ||
		v.Spec.HostPath == nil || v.DeletionTimestamp != nil {
		return nil
	}
	path := v.Spec.HostPath.Path
	// Never remove anything outside our own directory, whatever a PV says.
	if filepath.Dir(path) != p.dir || !strings.HasSuffix(path, "_"+v.Name) {
		return fmt.Errorf("volume %s: path %s is not one of ours; left alone", v.Name, path)
	}
	if err := os.RemoveAll(path); err != nil {
		return fmt.Errorf("volume %s: remove %s: %w", v.Name, path, err)
	}
	err := p.client.CoreV1().PersistentVolumes().Delete(ctx, v.Name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("volume %s: delete: %w", v.Name, err)
	}
	if err == nil {
		log.Printf("volume %s: deleted with %s", v.Name, path)
	}
	return nil
}
