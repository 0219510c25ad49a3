"""Every mistake the checks can name: its short label (a grader's column) and its advice.

Introduced in 06_recode_from_scratch (see ``cvae_lib.checks``). The check that finds a mistake
fills its advice's ``{fields}``; ``FIXES`` fills the right lines of code.
"""

FIXES = {"BCE": "F.binary_cross_entropy(reconstruction, original, reduction='sum')",
         "KL": "-0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())",
         "STD": "std = torch.exp(0.5 * logvar)", "EPS": "epsilon = torch.randn_like(std)"}

TABLE: dict[str, tuple[str, str]] = {  # key: (label, advice)
    # check_simple_cvae
    "constructor": ("constructor needs arguments", "The check builds your model as {name}() or "
                    "{name}(latent_dim=3), but {problem}: subclass nn.Module, with defaults."),
    "missing_method": ("missing encode/decode", "{cls} has no {method} method: forward and the "
                       "sampling code call encode(x, labels_onehot) and decode(z, "
                       "labels_onehot)."),
    "crash": ("code raises an error", "{where} raised {error}.{hint}"),
    "cat_dim0": ("dim=0 concatenation", "In {where} you concatenated along dim=0, the batch "
                 "dimension: the label goes beside the features, torch.cat([{first}, "
                 "labels_onehot], dim=1)."),
    "encoder_size": ("encoder input size", "{layer} takes {expected} inputs but receives the "
                     "image and the one-hot label, 794: make it nn.Linear(784 + 10, 256)."),
    "decoder_size": ("decoder input size", "{layer} takes {expected} inputs but receives z and "
                     "the one-hot label, {got}: make it nn.Linear(latent_dim + 10, 128)."),
    "encoder_no_label": ("encoder ignores the label", "{finding}: the encoder ignores the label. "
                         "Feed it combined = torch.cat([x, labels_onehot], dim=1)."),
    "decoder_no_label": ("decoder ignores the label", "{finding}: the decoder ignores the label. "
                         "Feed it combined = torch.cat([z, labels_onehot], dim=1)."),
    "layer_sizes": ("hidden layer sizes", "{layer} takes {expected} inputs but receives {got}: "
                    "the encoder goes 794 -> 256 -> 128 -> latent_dim (for mu and for logvar), "
                    "the decoder latent_dim + 10 -> 128 -> 256 -> 784."),
    "one_hot_width": ("one_hot without num_classes", "forward made one-hot rows {width} wide for "
                      "labels [4, 5, 6], one more than the largest label: write "
                      "F.one_hot(labels, num_classes=10).float()."),
    "shape": ("wrong output shape", "{call} should return {want}; it gave {got}."),
    "no_sigmoid": ("no sigmoid on the output", "{finding}. End the decoder with "
                   "torch.sigmoid(self.decoder_fc3(h)): probabilities strictly between 0 and 1."),
    "forward_return": ("forward return value", "forward(x, labels) should return (reconstruction, "
                       "mu, logvar) in that order, shaped {want}; it gave {got}."),
    "forward_no_sampling": ("forward decodes mu, no sample", "forward gave the same "
                            "reconstruction twice for one image: decode a sample, "
                            "z = self.reparameterize(mu, logvar), not mu."),
    # check_reparameterize
    "no_noise": ("no noise added", "reparameterize returned mu unchanged: z = mu + std * epsilon "
                 "with {EPS}."),
    "same_noise_every_call": ("same noise on every call", "Two calls gave the same z: draw {EPS} "
                              "afresh in each call (no torch.manual_seed inside)."),
    "noise_shared_batch": ("noise shared across images", "Every image in the batch got the same "
                           "noise: draw {EPS}, one value per entry, not torch.randn(latent_dim)."),
    "noise_shared_dims": ("noise shared across dims", "Every latent dimension got the same noise: "
                          "draw {EPS}, one value per entry, not torch.randn(batch, 1)."),
    "mu_missing": ("mu not added", "For mu from -20 to 20 your z moves {slope:.2f} per unit of "
                   "mu, not 1: add mu once, z = mu + std * epsilon."),
    "uniform_noise": ("uniform noise (torch.rand)", "The noise is never negative: torch.rand "
                      "draws from [0, 1). Use standard normal noise, {EPS}."),
    "std_exp_logvar": ("std = exp(logvar)", "Your noise grows like exp(logvar): {spread}. "
                       "exp(logvar) is the variance; for the standard deviation use {STD}."),
    "std_logvar": ("logvar used as std", "Your noise grows like logvar: {spread}. You scaled it "
                   "by logvar itself, the log of the variance; use {STD}."),
    "noise_scale": ("wrong noise scale", "{finding}: scale epsilon once by {STD}."),
    "noise_batch": ("noise depends on batch size", "With a batch of {batch} your noise has mean "
                    "{mean:.2f}, std {std:.2f}; with {rows} mean {mean_all:.2f}, std "
                    "{std_all:.2f}: the noise must not depend on the batch size. Draw {EPS}."),
    "not_normal": ("noise not standard normal", "{tails:.1%} of your noise lies beyond 2 std (a "
                   "normal gives 4.6%); it must be standard normal, {EPS}."),
    "reparam_formula": ("reparameterization formula", "{finding}: z = mu + std * epsilon with "
                        "{STD} and {EPS}, whose mean is 0."),
    "no_gradient": ("torch.normal: no gradient", "No gradient flows from z to mu or logvar: "
                    "torch.normal(mu, std) and .sample() draw without one. Write "
                    "z = mu + std * epsilon with {EPS}, or use .rsample()."),
    "no_gradient_mu": ("no gradient to mu", "No gradient flows from z back to mu: don't detach "
                       "mu; z = mu + std * epsilon."),
    "no_gradient_logvar": ("no gradient to logvar", "No gradient flows from z back to logvar: "
                           "the noise was drawn with torch.normal / .sample() or detached. Write "
                           "std * epsilon with {STD} and {EPS}."),
    # check_cvae_loss
    "not_scalar": ("loss is not one number", "cvae_loss returned {got}; it should return one "
                   "number, recon_loss + kl_loss, each summed over all entries."),
    "loss_per_image": ("loss divided by batch size", "Your loss is divided by the batch size; "
                       "this exercise sums over the batch (the loop divides only what it "
                       "prints): drop the division."),
    "bce_mean": ("BCE averaged (mean)", "Your reconstruction term is averaged over pixels and "
                 "images (reduction='mean', the default), so the summed KL outweighs it: use "
                 "reduction='sum'."),
    "bce_per_image": ("BCE divided by batch size", "Your reconstruction term is divided by the "
                      "batch size while the KL is summed: sum both (reduction='sum')."),
    "no_bce": ("no reconstruction term", "Your loss does not change with the reconstruction: the "
               "reconstruction term is missing. Add {BCE}."),
    "bce_sign": ("BCE sign", "Your reconstruction term falls as the reconstruction gets worse: "
                 "binary cross-entropy has a leading minus, -sum(x*log(r) + (1-x)*log(1-r))."),
    "bce_swapped": ("BCE arguments swapped", "Your binary cross-entropy's arguments are "
                    "swapped: the reconstruction comes first, the original second."),
    "bce_one_term": ("BCE missing the (1 - x) term", "Your reconstruction term counts only the "
                     "inked pixels: add (1 - x) * log(1 - r) for the blank ones, or use {BCE}."),
    "bce_logits": ("BCE-with-logits on probs", "binary_cross_entropy_with_logits expects values "
                   "before a sigmoid, but your decoder already ends with a sigmoid: use {BCE}."),
    "mse": ("MSE instead of BCE", "Your reconstruction term is a squared error; pixels are ink "
            "probabilities here, scored by binary cross-entropy: {BCE}."),
    "recon_formula": ("reconstruction formula", "Your reconstruction term {finding}. Use {BCE}."),
    "no_kl": ("no KL term", "Your loss does not change with mu and logvar: it has no KL term. "
              "Add kl_loss = {KL}."),
    "kl_sign": ("KL sign", "Your KL has the wrong sign: it falls as mu leaves 0, pushing the "
                "encoder away from the prior. The KL is never negative: {KL}."),
    "kl_half": ("KL missing the 0.5", "Your KL is twice the right value: put 0.5 in front, {KL}."),
    "kl_mean": ("KL averaged (mean)", "Your KL is averaged (torch.mean) while the reconstruction "
                "is summed: use torch.sum."),
    "kl_per_image": ("KL divided by batch size", "Your KL is divided by the batch size while the "
                     "reconstruction is summed: sum the KL over images too, {KL}."),
    "kl_first_image": ("KL of first image only", "Your KL counts only the first image: sum over "
                       "all images and latent dimensions, {KL}."),
    "kl_no_mu2": ("KL without mu^2", "Your KL ignores mu: the - mu^2 term is missing, {KL}."),
    "kl_logvar2": ("KL: logvar^2 for exp(logvar)", "Your KL has logvar^2 where the formula has "
                   "exp(logvar), the variance: {KL}."),
    "kl_std": ("KL: std for variance", "Your KL has exp(0.5 * logvar), the standard deviation, "
               "where the formula has exp(logvar), the variance: {KL}."),
    "kl_one": ("KL missing the '1 +'", "Your KL is {kl:.2f} at mu = 0, logvar = 0, where it "
               "should be 0: the '1 +' is missing, {KL}."),
    "kl_formula": ("KL formula", "Your KL {finding}. The KL is {KL}."),
    "offset": ("constant added to loss", "At mu = 0, logvar = 0 your loss is {loss:.3f}, not the "
               "summed BCE {bce:.3f}: remove the constant {offset:+.3f}."),
}
