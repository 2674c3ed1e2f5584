import torch

from bsr.loss import multi_resolution_stft_loss, separation_loss


def test_loss_is_zero_for_a_perfect_estimate_and_grows_with_error():
    ref = torch.randn(2, 4, 2, 8000)
    assert separation_loss(ref, ref)[0].item() == 0.0
    small = separation_loss(ref + 0.01 * torch.randn_like(ref), ref)[0]
    large = separation_loss(ref + 0.1 * torch.randn_like(ref), ref)[0]
    assert 0 < small < large


def test_matches_the_community_loss():
    """bs-roformer 0.4.1 computes the same loss inside its forward: compare."""
    from bs_roformer import BSRoformer as PeerModel

    torch.manual_seed(0)
    peer = PeerModel(
        dim=16,
        depth=1,
        stereo=True,
        num_stems=1,
        time_transformer_depth=1,
        freq_transformer_depth=1,
        dim_head=8,
        heads=2,
    ).eval()
    audio, target = torch.randn(1, 2, 44100), torch.randn(1, 2, 44100)
    with torch.no_grad():
        total, (waveform, spectral) = peer(audio, target=target, return_loss_breakdown=True)
        estimate = peer(audio)
    ours, parts = separation_loss(estimate[:, None], target[:, None, :, : estimate.shape[-1]])
    assert abs(parts["waveform_l1"] - waveform.item()) < 1e-5
    assert abs(parts["stft_l1"] - spectral.item()) < 1e-4 * spectral.item()
    assert abs(ours.item() - total.item()) < 1e-4 * total.item()


def test_multi_resolution_has_five_windows():
    ref = torch.zeros(1, 4096)
    est = torch.zeros(1, 4096)
    est[0, 2000] = 1.0  # an impulse: each window's spectrum sees it
    one = multi_resolution_stft_loss(est, ref, windows=(1024,))
    five = multi_resolution_stft_loss(est, ref)
    assert one > 0 and five > one
