"""Gradient accumulation of CLIPModel (``accum_steps``, GradCache): K
micro-batches of B give the loss, gradients, logged values and weights of
one batch of K x B, in one process.

The comparisons run in float64 (``double_batch``), where the two
computations agree to ~1e-12: in float32 Adam turns the rounding noise of
gradients that are zero in exact arithmetic (the key bias of attention,
which softmax cancels) into updates of ``lr`` size, so weights after Adam
steps would differ by ~1e-4 for reasons that have nothing to do with
accumulation.
"""
import pytest
import torch
from mmengine.optim import OptimWrapper
from mmpretrain.structures import DataSample

from conftest import tiny_clip_config
from mmclip.models.multimodal.grad_cache import split_batch
from mmclip.registry import MODELS

BATCH, K, STEPS = 32, 4, 2
TOL = 1e-6
HEADS = ('CLIPContrastiveHead', 'SigLIPHead')
# Every source of randomness in the towers' training forward.
DROPOUT = dict(
    vision_backbone=dict(patch_dropout=0.5, drop_path_rate=0.2,
                         attn_drop_rate=0.2),
    text_encoder=dict(attn_drop_rate=0.2))


class RecordsGrads:
    """Optim wrapper mixin that keeps every parameter's gradient at each
    step."""

    def step(self, **kwargs):
        self.grads.append({
            self.names[id(p)]: p.grad.clone()
            for group in self.optimizer.param_groups
            for p in group['params'] if p.grad is not None})
        super().step(**kwargs)


class ScalesLoss:
    """Optim wrapper mixin that multiplies the loss before backward and
    divides the gradients before the step, as the float16 loss scaler of
    mmengine's AmpOptimWrapper."""
    SCALE = 1024.

    def backward(self, loss, **kwargs):
        super().backward(loss * self.SCALE, **kwargs)

    def step(self, **kwargs):
        for group in self.optimizer.param_groups:
            for p in group['params']:
                if p.grad is not None:
                    p.grad /= self.SCALE
        super().step(**kwargs)


def recording(model, wrapper_cls=OptimWrapper, *mixins, **kwargs):
    """``wrapper_cls`` with AdamW over ``model`` that records gradients
    (``.grads``, a dict per step)."""
    cls = type('Recording', (*mixins, RecordsGrads, wrapper_cls), {})
    wrapper = cls(optimizer=torch.optim.AdamW(model.parameters(), lr=1e-3),
                  **kwargs)
    wrapper.names = {id(p): n for n, p in model.named_parameters()}
    wrapper.grads = []
    return wrapper


def build(accum_steps=1, head='CLIPContrastiveHead', dtype=torch.float64,
          overrides=None, **kwargs):
    """The tiny CLIP (seed 0) in ``dtype``, in training mode; inputs come
    preprocessed (``double_batch``). ``head`` is a type or a config,
    ``overrides`` update the towers' configs, ``kwargs`` are CLIPModel's."""
    torch.manual_seed(0)
    cfg = tiny_clip_config()
    for key, value in (overrides or {}).items():
        cfg[key].update(value)
    cfg.update(head=dict(type=head) if isinstance(head, str) else head,
               accum_steps=accum_steps,
               data_preprocessor=dict(type='BaseDataPreprocessor'), **kwargs)
    return MODELS.build(cfg).to(dtype).train()


def double_batch(step, size=BATCH, dtype=torch.float64):
    """A fixed batch per step: normalised-looking images and 3-token
    captions related to nothing (the loss is high, gradients large)."""
    gen = torch.Generator().manual_seed(step)
    samples = []
    for _ in range(size):
        ids = torch.zeros(77, dtype=torch.long)
        ids[0], ids[4] = 49406, 49407
        ids[1:4] = torch.randint(1, 400, (3, ), generator=gen)
        sample = DataSample()
        sample.set_field(ids, 'text_ids')
        samples.append(sample)
    images = torch.randn(size, 3, 32, 32, generator=gen).to(dtype)
    return dict(inputs=images, data_samples=samples)


def train(model, wrapper, steps=STEPS, size=BATCH):
    """``steps`` train steps; the logged values of each."""
    return [model.train_step(double_batch(s, size, next(
        model.parameters()).dtype), wrapper) for s in range(steps)]


def assert_same_run(logs, wrapper, model, ref_logs, ref_wrapper, ref_model,
                    tol=TOL):
    for got, ref in zip(logs, ref_logs, strict=True):
        assert got.keys() == ref.keys()
        for key in ref:
            assert abs(got[key].item() - ref[key].item()) <= tol, key
    for got, ref in zip(wrapper.grads, ref_wrapper.grads, strict=True):
        assert got.keys() == ref.keys()
        for name in ref:
            assert (got[name] - ref[name]).abs().max().item() <= tol, name
    ref_params = dict(ref_model.named_parameters())
    for name, param in model.named_parameters():
        assert (param - ref_params[name]).abs().max().item() <= tol, name


@pytest.mark.parametrize('head', HEADS)
def test_k_micro_batches_equal_one_batch(head):
    ref = build(1, head)
    ref_wrapper = recording(ref)
    ref_logs = train(ref, ref_wrapper)
    model = build(K, head)
    wrapper = recording(model)
    sizes = []
    model.backbone.register_forward_hook(
        lambda module, args, out: sizes.append(len(args[0])))
    logs = train(model, wrapper)
    assert_same_run(logs, wrapper, model, ref_logs, ref_wrapper, ref)
    # Not vacuous: the towers saw micro-batches only (embedded, then
    # re-run with a graph), every parameter had a gradient, and the steps
    # moved the weights.
    assert sizes == [BATCH // K] * (2 * K * STEPS)
    assert len(wrapper.grads[0]) == len(list(model.parameters()))
    assert min(g.abs().max().item() for g in wrapper.grads[0].values()) > 0
    assert (model.logit_scale - build(1, head).logit_scale).abs() > 1e-4


def test_uneven_last_batch_and_a_loss_scaling_wrapper():
    """A batch that K does not divide (an epoch's last) is split as evenly
    as it goes; the micro-batches go through the wrapper's ``backward``,
    so its loss scaling (float16's) applies to them as to the loss."""
    ref = build(1)
    ref_wrapper = recording(ref)
    ref_logs = train(ref, ref_wrapper, size=10)
    model = build(K)
    wrapper = recording(model, OptimWrapper, ScalesLoss)
    assert [len(c[0]) for c in split_batch(
        torch.zeros(10), list(range(10)), K)] == [3, 3, 2, 2]
    assert [len(c[0]) for c in split_batch(
        torch.zeros(3), list(range(3)), K)] == [1, 1, 1]
    logs = train(model, wrapper, size=10)
    assert_same_run(logs, wrapper, model, ref_logs, ref_wrapper, ref)


def test_with_gradient_checkpointing():
    ref = build(1)
    ref_wrapper = recording(ref)
    ref_logs = train(ref, ref_wrapper)
    model = build(K, overrides=dict(vision_backbone=dict(with_cp=True),
                                    text_encoder=dict(with_cp=True)))
    wrapper = recording(model)
    logs = train(model, wrapper)
    assert_same_run(logs, wrapper, model, ref_logs, ref_wrapper, ref)


def chunked_reference_step(model, data, wrapper):
    """Accumulation's meaning with randomness in the towers: the micro-
    batches embedded in turn, with a graph each (drawing their dropout
    masks in that order), one loss over all of them, one backward."""
    img, txt = zip(*(model.pair_features(inputs, samples)
                     for inputs, samples, _ in split_batch(
                         data['inputs'], data['data_samples'], K)))
    losses = model.head.loss(torch.cat(img), torch.cat(txt),
                             model.logit_scale)
    loss, log_vars = model.parse_losses(losses)
    wrapper.update_params(loss)
    return log_vars


@pytest.mark.parametrize('head', HEADS)
def test_dropout_masks_are_replayed(head):
    """With dropout, drop path and patch dropout on, the re-run draws the
    masks of the first pass: the step equals the one that keeps every
    micro-batch's graph, for two steps (the generator continues as
    there)."""
    ref = build(K, head, overrides=DROPOUT)
    ref_wrapper = recording(ref)
    ref_logs = [chunked_reference_step(ref, double_batch(s), ref_wrapper)
                for s in range(STEPS)]
    model = build(K, head, overrides=DROPOUT)
    wrapper = recording(model)
    logs = train(model, wrapper)
    assert_same_run(logs, wrapper, model, ref_logs, ref_wrapper, ref)
    # Not vacuous: the masks matter (other draws, other loss) ...
    other_model = build(K, head, overrides=DROPOUT)
    torch.manual_seed(1)
    other = train(other_model, recording(other_model), steps=1)
    assert abs(other[0]['loss'] - logs[0]['loss']) > 1e-3
    # ... and without the replay the re-run draws new ones.
    from mmclip.models.multimodal import grad_cache
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(grad_cache.RNGSnapshot, 'replay',
                      lambda self: torch.enable_grad())
        model = build(K, head, overrides=DROPOUT)
        wrapper = recording(model)
        train(model, wrapper, steps=1)
    worst = max((wrapper.grads[0][n] - ref_wrapper.grads[0][n]).abs().max()
                for n in ref_wrapper.grads[0])
    assert worst > 1e-3


def relative_distance(grads: dict, ref: dict) -> float:
    """|grads - ref| / |ref| over all parameters together."""
    diff = sum(((grads[n] - ref[n])**2).sum() for n in ref)
    return (diff / sum((ref[n]**2).sum() for n in ref)).sqrt().item()


def test_bf16_autocast_matches_the_one_batch_run():
    """bf16 autocast (the CPU AMP wrapper, forced on): K micro-batches
    against one batch, both in bf16: their gradients differ by a small
    fraction of bf16's own error (against float32)."""
    from mmclip.engine.optimizers import CPUAmpOptimWrapper

    def first_step(accum_steps, bf16=True):
        model = build(accum_steps, dtype=torch.float32)
        wrapper = recording(model, CPUAmpOptimWrapper, cpu_bf16=bf16)
        return train(model, wrapper, steps=1)[0], wrapper.grads[0]

    (ref_log, ref), (log, grads) = first_step(1), first_step(K)
    assert log['loss'].item() == pytest.approx(ref_log['loss'].item(),
                                               rel=1e-4)
    bf16_error = relative_distance(ref, first_step(1, bf16=False)[1])
    assert bf16_error > 1e-2  # autocast was on
    assert relative_distance(grads, ref) < bf16_error / 10


def test_nonfinite_loss_skips_before_any_micro_batch_reruns(mm_log):
    from mmclip.engine.optimizers import NonFiniteSkipOptimWrapper
    model = build(K)
    with torch.no_grad():
        model.logit_scale.fill_(float('nan'))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    wrapper = NonFiniteSkipOptimWrapper(
        optimizer=torch.optim.AdamW(model.parameters(), lr=1e-3))
    calls = []
    model.backbone.register_forward_hook(lambda *args: calls.append(1))
    train(model, wrapper, steps=1)
    assert len(calls) == K  # the first pass only
    assert wrapper.num_skipped_steps == 1
    for name, param in model.named_parameters():
        torch.testing.assert_close(param, before[name], rtol=0, atol=0,
                                   equal_nan=True, msg=name)
        assert param.grad is None
    assert any('Non-finite loss' in m for m in mm_log)


def test_a_whole_batch_loss_of_an_accumulating_model_warns():
    """mmengine's own DDP wrapper computes mode='loss' on the whole batch
    and never reaches train_step: say so rather than use K x B memory in
    silence."""
    model = build(K)
    data = double_batch(0, 4)
    with pytest.warns(UserWarning, match='accum_steps=4.*Accumulating'):
        model(data['inputs'], data['data_samples'], mode='loss')


@pytest.mark.parametrize('value', [0, -1, 2.0, True])
def test_accum_steps_must_be_a_positive_int(value):
    with pytest.raises(ValueError, match='accum_steps must be a positive'):
        build(value)


@pytest.fixture
def process_group_of_one():
    """A gloo process group of this process alone (FSDP then shards
    nothing: its NO_SHARD path)."""
    import torch.distributed as dist

    from conftest import free_loopback_port
    dist.init_process_group(
        'gloo', init_method=f'tcp://127.0.0.1:{free_loopback_port()}',
        rank=0, world_size=1)
    yield
    dist.destroy_process_group()


@pytest.mark.parametrize('kind', ['ddp', 'fsdp'])
def test_wrapped_in_a_process_group_of_one(process_group_of_one, kind):
    """The accumulating wrappers with one process (one GPU) train as the
    model alone. FSDP as the FSDP config wraps a tiny model: one unit,
    whose parameters FSDP unsharded for good when the loss's gradient was
    taken through its output (the optimizer then stepped tensors the model
    no longer used)."""
    from test_grad_cache_distributed import full_weights, wrap
    ref = build(1, nonscalar_logit_scale=True)
    ref_wrapper = recording(ref)
    ref_logs = train(ref, ref_wrapper)
    model = build(K, nonscalar_logit_scale=True)
    net = wrap(model, kind, min_num_params=10**7)
    wrapper = recording(net)
    logs = train(net, wrapper)
    for got, want in zip(logs, ref_logs):
        assert abs(got['loss'].item() - want['loss'].item()) <= TOL
    weights = full_weights(net, model, kind)
    for name, value in ref.named_parameters():
        assert (weights[name].reshape(value.shape) - value).abs().max() <= TOL
