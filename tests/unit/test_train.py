"""Tests for segtutor.train: learning, stopping, checkpoints and exact resumption."""

from __future__ import annotations

import json
import math
import signal
import threading
import time

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from segtutor.losses import cross_entropy
from segtutor.train import History, evaluate, fit, load_checkpoint, one_cycle_in_time, predict
from segtutor.train import loop as loop_module
from segtutor.train import schedules as schedules_module

STEPS_PER_EPOCH = 4  # 16 items, batches of 4


class NoisyMasks(Dataset):
    """Random two-class masks; the image shows the mask in channel 0 plus fresh noise drawn
    from torch's global generator on every access, as random augmentation would.

    ``interrupt_at``: raise KeyboardInterrupt on that call of ``__getitem__`` (once)."""

    def __init__(self, n: int = 16, size: int = 6, interrupt_at: int | None = None) -> None:
        gen = torch.Generator().manual_seed(42)
        self.masks = (torch.rand(n, size, size, generator=gen) > 0.5).long()
        self.interrupt_at = interrupt_at
        self.calls = 0

    def __len__(self) -> int:
        return len(self.masks)

    def __getitem__(self, i: int):
        self.calls += 1
        if self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        mask = self.masks[i]
        image = torch.stack([mask.float(), torch.zeros(mask.shape)]) + 0.3 * torch.randn(2, *mask.shape)
        return image, mask


def make_model() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(2, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Dropout2d(0.2), nn.Conv2d(8, 2, 1))


def make_loader(dataset: Dataset, seeded: bool = True) -> DataLoader:
    generator = torch.Generator().manual_seed(7) if seeded else None
    return DataLoader(dataset, batch_size=4, shuffle=True, generator=generator)


def adam(params):
    return torch.optim.Adam(params, lr=0.02)


def halving_every_4_steps(optimizer):
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=4, gamma=0.5)


def train(model, loader, val_loader=None, **kwargs):
    options = dict(num_classes=2, optimizer=adam, lr_scheduler=halving_every_4_steps, seed=0,
                   progress=False, device="cpu")
    options.update(kwargs)
    return fit(model, loader, val_loader, **options)


def assert_same_state(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def test_it_learns_a_trivial_task():
    data = NoisyMasks(n=32)
    history = train(make_model(), make_loader(data), DataLoader(data, batch_size=16), epochs=8,
                    lr_scheduler=None)
    assert len(history) == 8 and history.epoch == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    assert len(history.step_loss) == 8 * 8 and history.step == [8 * e for e in range(1, 9)]
    assert history.train_loss[-1] < 0.5 * history.train_loss[0]
    # chance level for two balanced classes is an mIoU of about 1/3
    assert history.val_miou[-1] > 0.8 and history.val_miou[-1] > history.val_miou[0]
    assert history.stop_reason == "epochs"


def test_scheduler_is_stepped_after_every_step():
    history = train(make_model(), make_loader(NoisyMasks()), epochs=3)
    # 4 steps per epoch, the rate halves every 4 steps: 0.02 * 0.5 ** epoch
    assert history.lr == pytest.approx([0.01, 0.005, 0.0025])
    assert all(math.isnan(v) for v in history.val_miou)  # no validation loader


@pytest.mark.parametrize("seeded_loader", [True, False])
def test_ctrl_c_then_resume_gives_identical_weights(tmp_path, seeded_loader):
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals can only be caught in the main thread")
    reference = make_model()
    expected = train(reference, make_loader(NoisyMasks(), seeded_loader), epochs=3)

    calls = 0

    def loss_with_ctrl_c(logits, masks):
        nonlocal calls
        calls += 1
        if calls == 6:  # in the middle of the second epoch
            signal.raise_signal(signal.SIGINT)
        return cross_entropy(logits, masks)

    path = tmp_path / "run.pt"
    handler_before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        train(make_model(), make_loader(NoisyMasks(), seeded_loader), epochs=3,
              checkpoint=path, loss_fn=loss_with_ctrl_c)
    assert signal.getsignal(signal.SIGINT) is handler_before
    saved = load_checkpoint(path)
    assert (saved["epochs_done"], saved["batches_done"], saved["global_step"]) == (1, 2, 6)
    assert saved["history"]["stop_reason"] == "interrupted"

    resumed = nn.Sequential(nn.Conv2d(2, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                            nn.Dropout2d(0.2), nn.Conv2d(8, 2, 1))  # fresh, unseeded weights
    history = train(resumed, make_loader(NoisyMasks(), seeded_loader), epochs=3,
                    checkpoint=path)
    assert_same_state(resumed, reference)
    assert history.step_loss == expected.step_loss
    assert history.epoch == [1.0, 2.0, 3.0] and history.lr == expected.lr


def test_ctrl_c_during_the_last_validation_is_not_swallowed(tmp_path):
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals can only be caught in the main thread")

    class CtrlCOnFirstAccess(NoisyMasks):
        def __getitem__(self, i):
            if self.calls == 0:
                signal.raise_signal(signal.SIGINT)
            return super().__getitem__(i)

    path = tmp_path / "run.pt"
    with pytest.raises(KeyboardInterrupt):
        train(make_model(), make_loader(NoisyMasks()), DataLoader(CtrlCOnFirstAccess()),
              epochs=1, checkpoint=path)
    saved = load_checkpoint(path)
    assert saved["epochs_done"] == 1 and saved["history"]["stop_reason"] == "interrupted"
    assert len(saved["history"]["val_miou"]) == 1


def test_interrupt_while_loading_data_saves_and_resumes_exactly(tmp_path):
    reference = make_model()
    train(reference, make_loader(NoisyMasks()), epochs=3)
    path = tmp_path / "run.pt"
    # item fetch number 23 is the third item of the second batch of epoch 2
    with pytest.raises(KeyboardInterrupt):
        train(make_model(), make_loader(NoisyMasks(interrupt_at=23)), epochs=3, checkpoint=path)
    saved = load_checkpoint(path)
    assert (saved["epochs_done"], saved["batches_done"]) == (1, 1)
    resumed = make_model()
    train(resumed, make_loader(NoisyMasks()), epochs=3, checkpoint=path)
    assert_same_state(resumed, reference)


def test_time_budget_stops_and_resumes_exactly(tmp_path):
    def slow_loss(logits, masks):
        time.sleep(0.05)
        return cross_entropy(logits, masks)

    reference = make_model()
    train(reference, make_loader(NoisyMasks()), epochs=3, loss_fn=slow_loss)

    path = tmp_path / "run.pt"
    model = make_model()
    first = train(model, make_loader(NoisyMasks()), epochs=3, time_budget=0.3,
                  loss_fn=slow_loss, checkpoint=path)
    assert first.stop_reason == "time_budget"
    assert len(first.step_loss) < 3 * STEPS_PER_EPOCH
    calls = 1
    history = first
    while history.stop_reason != "epochs":
        assert calls < 50, "resuming makes no progress"
        history = train(model, make_loader(NoisyMasks()), epochs=3, time_budget=0.3,
                        loss_fn=slow_loss, checkpoint=path)
        calls += 1
    assert_same_state(model, reference)
    assert len(history.step_loss) == 3 * STEPS_PER_EPOCH


def test_time_budget_alone_records_the_partial_epoch():
    class Slow(NoisyMasks):
        def __getitem__(self, i):
            time.sleep(0.01)
            return super().__getitem__(i)

    data = Slow(n=400)
    history = train(make_model(), make_loader(data), DataLoader(NoisyMasks(), batch_size=8),
                    time_budget=0.5)
    assert history.stop_reason == "time_budget"
    # an epoch of 100 batches sleeps at least 4 seconds, so the budget cut the first one
    assert len(history) == 1 and 0 < history.epoch[0] < 1
    assert history.epoch[0] == pytest.approx(history.step[0] / 100)
    assert 0 <= history.val_miou[0] <= 1


def test_more_epochs_from_a_finished_checkpoint_equal_one_long_run(tmp_path):
    reference = make_model()
    train(reference, make_loader(NoisyMasks()), epochs=3)
    path = tmp_path / "run.pt"
    model = make_model()
    train(model, make_loader(NoisyMasks()), epochs=1, checkpoint=path)
    history = train(model, make_loader(NoisyMasks()), epochs=3, checkpoint=path)
    assert history.epoch == [1.0, 2.0, 3.0]
    assert_same_state(model, reference)


def test_validation_does_not_change_the_training_run():
    data = NoisyMasks()
    without = make_model()
    train(without, make_loader(data), epochs=2)
    with_validation = make_model()
    shuffled = DataLoader(data, batch_size=8, shuffle=True)  # draws from the global generator
    train(with_validation, make_loader(data), shuffled, epochs=2)
    assert_same_state(with_validation, without)


def test_finished_checkpoint_does_not_train_again(tmp_path):
    path = tmp_path / "run.pt"
    model = make_model()
    train(model, make_loader(NoisyMasks()), epochs=2, checkpoint=path)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    again = train(model, make_loader(NoisyMasks()), epochs=2, checkpoint=path)
    assert len(again.step_loss) == 2 * STEPS_PER_EPOCH
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])


def test_checkpoint_loads_with_weights_only_and_holds_the_history(tmp_path):
    path = tmp_path / "sub" / "run.pt"
    data = NoisyMasks()
    model = make_model()
    history = train(model, make_loader(data), DataLoader(data, batch_size=8), epochs=2,
                    checkpoint=path)
    payload = torch.load(path, weights_only=True)
    assert payload["model_class"] == "torch.nn.modules.container.Sequential"
    assert payload["model_keys"]["0.weight"] == [8, 2, 3, 3]
    assert History.from_dict(payload["history"]) == history
    fresh = make_model()
    fresh.load_state_dict(payload["model"])
    assert_same_state(fresh, model)
    assert not (tmp_path / "sub" / "run.pt.tmp").exists()


def test_resume_false_starts_afresh(tmp_path):
    path = tmp_path / "run.pt"
    train(make_model(), make_loader(NoisyMasks()), epochs=2, checkpoint=path)
    history = train(make_model(), make_loader(NoisyMasks()), epochs=1, checkpoint=path,
                    resume=False)
    assert len(history) == 1 and load_checkpoint(path)["epochs_done"] == 1


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    path = tmp_path / "run.pt"
    train(make_model(), make_loader(NoisyMasks()), epochs=1, checkpoint=path)
    other = nn.Conv2d(2, 2, 1)
    with pytest.raises(ValueError, match=r"holds a torch.nn.modules.container.Sequential but "
                       r"the model is a torch.nn.modules.conv.Conv2d; keys only in the model: "
                       r"\['bias', 'weight'\]"):
        train(other, make_loader(NoisyMasks()), epochs=2, checkpoint=path)
    wider = nn.Sequential(nn.Conv2d(2, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.Dropout2d(0.2), nn.Conv2d(8, 3, 1))
    with pytest.raises(ValueError, match=r"shapes that differ \(checkpoint vs model\): "
                       r"\['4.bias: \[2\] vs \[3\]', '4.weight: \[2, 8, 1, 1\] vs \[3, 8, 1, 1\]'\]"):
        train(wider, make_loader(NoisyMasks()), num_classes=3, epochs=2, checkpoint=path)


def test_resuming_with_a_shorter_loader_is_refused(tmp_path):
    path = tmp_path / "run.pt"
    with pytest.raises(KeyboardInterrupt):
        train(make_model(), make_loader(NoisyMasks(interrupt_at=15)), epochs=2, checkpoint=path)
    assert load_checkpoint(path)["batches_done"] == 3
    with pytest.raises(ValueError, match="stopped after 3 batches of an epoch, but the "
                       "train_loader has only 2; resume with the same loader"):
        train(make_model(), make_loader(NoisyMasks(n=8)), epochs=2, checkpoint=path)


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.pt")
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="is not a checkpoint written by segtutor.train.fit"):
        load_checkpoint(path)


def test_history_round_trip():
    history = History(epoch=[1.0, 1.5], step=[4, 6], train_loss=[0.9, 0.7],
                      val_miou=[0.4, math.nan], val_pixel_accuracy=[0.6, 0.7], seconds=[1.0, 0.5],
                      lr=[1e-3, 1e-3], step_loss=[1.0, 0.9, 0.8, 0.8, 0.7, 0.7],
                      stop_reason="time_budget")
    restored = History.from_dict(json.loads(json.dumps(history.to_dict())))
    assert restored.to_dict().keys() == history.to_dict().keys()
    assert restored.epoch == history.epoch and restored.step_loss == history.step_loss
    assert restored.val_miou[0] == 0.4 and math.isnan(restored.val_miou[1])
    assert restored.stop_reason == "time_budget" and len(restored) == 2
    with pytest.raises(ValueError, match=r"missing keys \['lr'\], unknown keys \['learning_rate'\]"):
        data = history.to_dict()
        data["learning_rate"] = data.pop("lr")
        History.from_dict(data)


def test_evaluate_and_predict_against_direct_computation():
    data = NoisyMasks(n=8)
    model = make_model().train()
    images = torch.stack([data[i][0] for i in range(8)])
    masks = data.masks
    masks_with_ignore = masks.clone()
    masks_with_ignore[:, 0, :] = 255
    result = evaluate(model, DataLoader(TensorDataset(images, masks_with_ignore), batch_size=3),
                      num_classes=2)
    assert model.training  # the mode is restored
    model.eval()
    with torch.no_grad():
        labels = model(images).argmax(dim=1)
    counted = masks_with_ignore != 255
    accuracy = (labels[counted] == masks[counted]).double().mean().item()
    assert result["pixel_accuracy"] == pytest.approx(accuracy)
    ious = []
    for c in (0, 1):
        truth, guess = (masks == c) & counted, (labels == c) & counted
        ious.append((truth & guess).sum().item() / (truth | guess).sum().item())
    assert result["mean_iou"] == pytest.approx(sum(ious) / 2)
    model.train()
    assert torch.equal(predict(model, images), labels)
    single = predict(model, images[3])
    assert single.shape == (6, 6) and single.dtype == torch.int64
    assert torch.equal(single, labels[3]) and model.training


def test_evaluate_and_predict_restore_every_modules_own_mode():
    model = make_model().train()
    model[1].eval()  # a frozen batch norm inside a training model
    modes_before = [m.training for m in model.modules()]
    modes_inside = []
    model.register_forward_pre_hook(
        lambda module, args: modes_inside.append([m.training for m in module.modules()]))
    data = NoisyMasks(n=4)
    evaluate(model, DataLoader(data, batch_size=2), num_classes=2)
    assert [m.training for m in model.modules()] == modes_before
    predict(model, data[0][0])
    assert [m.training for m in model.modules()] == modes_before
    assert len(modes_inside) == 3 and not any(any(modes) for modes in modes_inside)
    with pytest.raises(TypeError, match="a batch must be"):  # also after an error
        evaluate(model, DataLoader(torch.zeros(2, 2, 6, 6)), num_classes=2)
    assert [m.training for m in model.modules()] == modes_before


# -- bad input --------------------------------------------------------------------------


def test_stopping_arguments_are_validated():
    loader = make_loader(NoisyMasks())
    with pytest.raises(ValueError, match="give epochs, time_budget .seconds., or both"):
        train(make_model(), loader)
    for bad, error in ((0, ValueError), (-1, ValueError), (1.5, TypeError), (True, TypeError)):
        with pytest.raises(error, match=f"epochs must be None or a positive int, got {bad}"):
            train(make_model(), loader, epochs=bad)
    for bad, error in ((0, ValueError), (-2.0, ValueError), (math.inf, ValueError),
                       ("10", TypeError)):
        with pytest.raises(error, match="time_budget must be None or a finite number of seconds "
                           "> 0"):
            train(make_model(), loader, time_budget=bad)


def test_other_bad_arguments():
    loader = make_loader(NoisyMasks())
    with pytest.raises(TypeError, match="amp must be True, False or None, got 'yes'"):
        train(make_model(), loader, epochs=1, amp="yes")
    with pytest.raises(ValueError, match=r"train_loader yields no batches"):
        train(make_model(), DataLoader(TensorDataset(torch.zeros(0, 2, 6, 6))), epochs=1)
    with pytest.raises(TypeError, match="lr_scheduler must be a factory"):
        optimizer = torch.optim.SGD(make_model().parameters(), lr=0.1)
        train(make_model(), loader, epochs=1,
              lr_scheduler=torch.optim.lr_scheduler.StepLR(optimizer, 1))
    with pytest.raises(TypeError, match="optimizer must be None, a torch.optim.Optimizer, or a "
                       "factory"):
        train(make_model(), loader, epochs=1, optimizer="adam")
    with pytest.raises(ValueError, match="num_classes must be an int >= 2, got 1"):
        train(make_model(), loader, epochs=1, num_classes=1)
    with pytest.raises(ValueError, match="log_every must be None or a positive int, got 0"):
        train(make_model(), loader, epochs=1, log_every=0)
    with pytest.raises(TypeError, match="device must be None, a string"):
        train(make_model(), loader, epochs=1, device=0)
    with pytest.raises(ValueError, match=r"images must be 3-D or 4-D \(\[C, H, W\] or \[N, C, H, W\]\)"
                       r", got shape \(6, 6\)"):
        predict(make_model(), torch.zeros(6, 6))


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(log_every=2.0), TypeError, r"log_every must be None or a positive int, got 2.0 \(float\)"),
    (dict(log_every=-3), ValueError, "log_every must be None or a positive int, got -3"),
    (dict(resume="no"), TypeError, r"resume must be True or False, got 'no' \(str\)"),
    (dict(progress=1), TypeError, r"progress must be True or False, got 1 \(int\)"),
    (dict(amp=1), TypeError, r"amp must be True, False or None, got 1 \(int\)"),
    (dict(num_classes=2.0), TypeError, r"num_classes must be an int >= 2, got 2.0 \(float\)"),
    (dict(ignore_index="255"), TypeError, "ignore_index must be None or an int, got '255'"),
    (dict(seed=-1), ValueError, "seed must be a non-negative int, got -1"),
    (dict(seed=0.5), TypeError, r"seed must be a non-negative int, got 0.5 \(float\)"),
    (dict(device=0), TypeError, r"device must be None, a string such as 'cuda' or a "
     r"torch.device, got 0 \(int\)"),
])
def test_fit_raises_type_error_for_a_wrong_type_and_value_error_for_a_wrong_value(
        kwargs, error, message):
    with pytest.raises(error, match=message):
        train(make_model(), make_loader(NoisyMasks()), epochs=1, **kwargs)


def test_a_model_must_be_a_module():
    loader = make_loader(NoisyMasks())
    message = r"model must be an nn.Module, got 'unet' \(str\)"
    with pytest.raises(TypeError, match=message):
        train("unet", loader, epochs=1)
    with pytest.raises(TypeError, match=message):
        evaluate("unet", loader, num_classes=2)
    with pytest.raises(TypeError, match=message):
        predict("unet", torch.zeros(1, 2, 6, 6))


def test_evaluate_and_predict_split_wrong_types_from_wrong_values():
    model, loader = make_model(), DataLoader(NoisyMasks(n=4), batch_size=2)
    with pytest.raises(TypeError, match=r"images must be a torch.Tensor \(\[C, H, W\] or "
                       r"\[N, C, H, W\]\), got \[\[0.0\]\] \(list\)"):
        predict(model, [[0.0]])
    with pytest.raises(ValueError, match=r"images must be 3-D or 4-D .*, got shape \(1, 1, 2, 6, 6\)"):
        predict(model, torch.zeros(1, 1, 2, 6, 6))
    with pytest.raises(TypeError, match=r"num_classes must be an int >= 2, got 2.0 \(float\)"):
        evaluate(model, loader, num_classes=2.0)
    with pytest.raises(ValueError, match="num_classes must be an int >= 2, got 1"):
        evaluate(model, loader, num_classes=1)
    with pytest.raises(TypeError, match="device must be None, a string"):
        evaluate(model, loader, num_classes=2, device=0)


def test_bad_batches_and_a_diverging_loss():
    single_tensors = DataLoader(torch.zeros(4, 2, 6, 6), batch_size=2)
    with pytest.raises(TypeError, match="a batch must be .images, masks. or .images, masks, "
                       "pixel_weights., got a Tensor of length 2"):
        train(make_model(), single_tensors, epochs=1)
    with pytest.raises(FloatingPointError, match="the training loss is nan at step 1"):
        train(make_model(), make_loader(NoisyMasks()), epochs=1,
              loss_fn=lambda logits, masks: logits.sum() * math.nan)


def test_pixel_weights_reach_the_loss():
    seen = []

    def loss(logits, masks, weights):
        seen.append(weights)
        return cross_entropy(logits, masks, pixel_weights=weights)

    data = NoisyMasks(n=4)
    images = torch.stack([data[i][0] for i in range(4)])
    weights = torch.rand(4, 6, 6)
    loader = DataLoader(TensorDataset(images, data.masks, weights), batch_size=4)
    train(make_model(), loader, epochs=1, loss_fn=loss)
    assert len(seen) == 1 and torch.equal(seen[0], weights)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_with_automatic_mixed_precision(tmp_path):
    data = NoisyMasks(n=32)
    model = make_model()
    path = tmp_path / "run.pt"
    history = train(model, make_loader(data), DataLoader(data, batch_size=16), epochs=3,
                    device="cuda", checkpoint=path, lr_scheduler=None)
    assert next(model.parameters()).device.type == "cuda"
    assert all(math.isfinite(v) for v in history.step_loss)
    assert history.train_loss[-1] < history.train_loss[0]
    payload = torch.load(path, weights_only=True)
    uses_fp16 = not torch.cuda.is_bf16_supported()
    assert (payload["scaler"] is not None) == uses_fp16
    again = train(model, make_loader(data), epochs=4, device="cuda", checkpoint=path,
                  lr_scheduler=None)
    assert len(again.step_loss) == 4 * 8


# -- CPU bfloat16 and the clock-driven schedule -------------------------------------------


def test_amp_on_the_cpu_trains_under_bfloat16_autocast_with_float32_weights():
    seen = []

    def loss_fn(logits, masks):
        seen.append((logits.dtype, torch.is_autocast_enabled("cpu"),
                     torch.get_autocast_dtype("cpu")))
        return cross_entropy(logits.float(), masks)

    model = make_model()
    history = train(model, make_loader(NoisyMasks()), epochs=1, amp=True, loss_fn=loss_fn)
    assert history.step[-1] == STEPS_PER_EPOCH
    # the convolutions ran in bfloat16 (autocast's CPU policy), as torch.autocast does it
    with torch.autocast("cpu", dtype=torch.bfloat16):
        reference = model(torch.randn(1, 2, 6, 6)).dtype
    assert reference == torch.bfloat16
    assert seen == [(torch.bfloat16, True, torch.bfloat16)] * STEPS_PER_EPOCH
    assert all(p.dtype == torch.float32 for p in model.parameters())
    # the default stays off on the CPU
    seen.clear()
    train(make_model(), make_loader(NoisyMasks()), epochs=1, loss_fn=loss_fn)
    assert {dtype for dtype, _, _ in seen} == {torch.float32}
    assert not any(enabled for _, enabled, _ in seen)


def test_amp_dtype_per_device():
    assert loop_module._amp_dtype(None, torch.device("cpu")) is None
    assert loop_module._amp_dtype(True, torch.device("cpu")) == torch.bfloat16
    assert loop_module._amp_dtype(False, torch.device("cuda")) is None
    with pytest.raises(ValueError, match="amp=True needs a CUDA or CPU device, got mps"):
        loop_module._amp_dtype(True, torch.device("mps"))


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_one_cycle_in_time_follows_the_clock(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(schedules_module.time, "perf_counter", clock)
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.5)
    scheduler = one_cycle_in_time(optimizer, 100.0, warmup=0.2, start_factor=0.1)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.5 * 0.1)  # time 0
    expected = {10.0: 0.1 + 0.9 * 0.5,  # half-way through the warm-up
                20.0: 1.0,  # the peak
                60.0: 0.5,  # half-way through the cosine
                90.0: 0.5 * (1 + math.cos(math.pi * 70 / 80)),
                100.0: 0.0, 250.0: 0.0}  # the end, and after it
    for elapsed, factor in expected.items():
        clock.now = 1000.0 + elapsed
        optimizer.step()
        scheduler.step()  # steps do not matter, only the clock
        assert optimizer.param_groups[0]["lr"] == pytest.approx(0.5 * factor, abs=1e-12), elapsed


def test_one_cycle_in_time_ends_with_fits_time_budget():
    model = make_model()
    history = train(model, make_loader(NoisyMasks(n=64)), time_budget=1.0,
                    lr_scheduler=lambda optimizer: one_cycle_in_time(optimizer, 1.0))
    assert history.stop_reason == "time_budget"
    assert history.lr[-1] < 0.02 * 0.05  # decayed close to zero when the budget ran out


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(seconds=0), ValueError, "seconds must be a finite number > 0, got 0"),
    (dict(seconds=True), TypeError, r"seconds must be a finite number > 0, got True \(bool\)"),
    (dict(seconds="10"), TypeError, r"seconds must be a finite number > 0, got '10' \(str\)"),
    (dict(seconds=math.inf), ValueError, "seconds must be a finite number > 0, got inf"),
    (dict(seconds=10, warmup=1.0), ValueError,
     r"warmup must be a finite number >= 0 and < 1, got 1.0"),
    (dict(seconds=10, warmup=-0.1), ValueError, r"warmup must be a finite number >= 0 and < 1"),
    (dict(seconds=10, warmup="0.1"), TypeError,
     r"warmup must be a finite number >= 0 and < 1, got '0.1' \(str\)"),
    (dict(seconds=10, start_factor=0), ValueError,
     r"start_factor must be a finite number > 0 and <= 1, got 0"),
    (dict(seconds=10, start_factor=1.5), ValueError, r"start_factor must be a finite number > 0"),
    (dict(seconds=10, start_factor=None), TypeError,
     r"start_factor must be a finite number > 0 and <= 1, got None \(NoneType\)"),
])
def test_one_cycle_in_time_rejects_bad_values(kwargs, error, message):
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(error, match=message):
        one_cycle_in_time(optimizer, **kwargs)
