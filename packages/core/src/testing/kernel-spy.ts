import * as tf from '@tensorflow/tfjs-core';
import type { FusedRolloutKernel } from '../policy-family';

/**
 * Counts the runs of a family's fused rollout kernel on one backend, so a test can prove a fused kernel ran
 * (a fused-vs-op-by-op comparison alone passes when none did). `install()` registers, under the family's
 * kernel name, a wrapper that counts the successful runs of the kernel registered there (or of the family's
 * own kernel for that backend); it is idempotent, and after the wrapper was unregistered (say by a test that
 * removes the kernel on purpose) it wraps whatever is registered then, or the kernel it counted before. `uninstall()` puts the wrapped kernel
 * back.
 */
export class FusedKernelSpy {
  runs = 0;
  private wrapper: tf.KernelFunc | undefined;
  private inner: tf.KernelFunc | undefined;

  constructor(
    readonly kernel: FusedRolloutKernel,
    readonly backend: string,
  ) {}

  private registered(): tf.KernelConfig | undefined {
    return tf.getKernel(this.kernel.kernelName, this.backend) as tf.KernelConfig | undefined;
  }

  install(): void {
    const registered = this.registered();
    if (registered && registered.kernelFunc === this.wrapper) return;
    // what is registered now, else the family's own kernel, else the kernel this spy counted before
    const inner = registered?.kernelFunc ?? this.kernel.kernels?.[this.backend] ?? this.inner;
    if (!inner) {
      throw new Error(`No ${this.kernel.kernelName} kernel to count for backend '${this.backend}'.`);
    }
    if (registered) tf.unregisterKernel(this.kernel.kernelName, this.backend);
    const wrapper: tf.KernelFunc = (args) => {
      const out = inner(args);
      this.runs++;
      return out;
    };
    this.inner = inner;
    this.wrapper = wrapper;
    tf.registerKernel({ kernelName: this.kernel.kernelName, backendName: this.backend, kernelFunc: wrapper });
  }

  uninstall(): void {
    const registered = this.registered();
    if (!registered || registered.kernelFunc !== this.wrapper || !this.inner) return;
    tf.unregisterKernel(this.kernel.kernelName, this.backend);
    tf.registerKernel({
      kernelName: this.kernel.kernelName,
      backendName: this.backend,
      kernelFunc: this.inner,
    });
  }
}
