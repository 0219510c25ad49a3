"""Every mistake the checks name: key -> (label, fix). The label is a grader's column; the check
that finds the mistake fills the fix's ``{fields}``, and ``FIXES`` the right code."""

FIXES = {"BCE": "F.binary_cross_entropy(reconstruction, original, reduction='sum')",
         "KL": "-0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())",
         "STD": "std = torch.exp(0.5 * logvar)", "EPS": "epsilon = torch.randn_like(std)"}

TABLE: dict[str, tuple[str, str]] = {
    # check_simple_cvae
    "constructor": ("constructor needs arguments", "Let {name}() build a model: {problem}."),
    "missing_method": ("missing encode/decode", "Give {cls} a {method} method."),
    "crash": ("code raises an error", "{where} raised {error}"),
    "cat_dim0": ("dim=0 concatenation", "In {where}: torch.cat([{first}, labels_onehot], dim=1)."),
    "encoder_size": ("encoder input size", "{layer} takes {expected}: nn.Linear(784 + 10, 256)."),
    "decoder_size": ("decoder input size", "{layer} takes {expected} inputs, not {got}: "
                     "nn.Linear(latent_dim + 10, 128)."),
    "encoder_no_label": ("encoder ignores the label", "{finding}: encode torch.cat([x, y], 1)."),
    "decoder_no_label": ("decoder ignores the label", "{finding}: decode torch.cat([z, y], 1)."),
    "layer_sizes": ("hidden layer sizes", "{layer} takes {expected} inputs but gets {got}: "
                    "794 -> 256 -> 128 -> latent_dim, latent_dim + 10 -> 128 -> 256 -> 784."),
    "one_hot_width": ("one_hot without num_classes", "Write F.one_hot(labels, num_classes=10)."),
    "shape": ("wrong output shape", "{call} should return {want}, not {got}."),
    "no_sigmoid": ("no sigmoid on the output", "End decode with torch.sigmoid({layer}(h))."),
    "forward_return": ("forward return value", "forward should return (reconstruction, mu, logvar)"
                       " shaped {want}, not {got}."),
    "forward_no_sampling": ("forward decodes mu, no sample", "Decode self.reparameterize(mu, "
                            "logvar), not mu."),
    # check_reparameterize
    "no_noise": ("no noise added", "Add noise: z = mu + std * epsilon with {EPS}."),
    "same_noise_every_call": ("same noise on every call", "Drop torch.manual_seed: draw {EPS}."),
    "noise_shared_batch": ("noise shared across images", "Draw one value per entry: {EPS}."),
    "noise_shared_dims": ("noise shared across dims", "Draw one value per entry: {EPS}."),
    "mu_missing": ("mu not added", "Your z moves {slope:.2f} per unit of mu, not 1: add mu once."),
    "uniform_noise": ("uniform noise (torch.rand)", "Draw normal noise: {EPS}."),
    "std_exp_logvar": ("std = exp(logvar)", "exp(logvar) is the variance; write {STD}."),
    "std_logvar": ("logvar used as std", "logvar is the log of the variance; write {STD}."),
    "noise_scale": ("wrong noise scale", "{finding}: scale epsilon once by {STD}."),
    "noise_batch": ("noise depends on batch size", "In batches of {batch} your noise has std "
                    "{std:.2f}, in {rows} rows {std_all:.2f}: draw {EPS}."),
    "not_normal": ("noise not standard normal", "Your noise has E[eps^4] = {m4:.2f}, not 3: "
                   "draw {EPS}."),
    "reparam_formula": ("reparameterization formula", "{finding}: z = mu + std * epsilon."),
    "no_gradient": ("torch.normal: no gradient", "z = mu + std * epsilon passes a gradient; "
                    "torch.normal and .sample() do not."),
    "no_gradient_mu": ("no gradient to mu", "Don't detach mu: z = mu + std * epsilon."),
    "no_gradient_logvar": ("no gradient to logvar", "Let logvar get a gradient: {STD}."),
    # check_cvae_loss
    "not_scalar": ("loss is not one number", "Return one number, recon + KL, not {got}."),
    "loss_per_image": ("loss divided by batch size", "Drop the division: sum over the batch."),
    "bce_mean": ("BCE averaged (mean)", "Sum the BCE as the KL is: reduction='sum'."),
    "bce_per_image": ("BCE divided by batch size", "Sum the BCE as the KL is: {BCE}."),
    "no_bce": ("no reconstruction term", "Add the reconstruction term, {BCE}."),
    "bce_sign": ("BCE sign", "Put back the leading minus: -sum(x*log(r) + (1-x)*log(1-r))."),
    "bce_swapped": ("BCE arguments swapped", "The reconstruction comes first: {BCE}."),
    "bce_one_term": ("BCE missing the (1 - x) term", "Add (1 - x) * log(1 - r), or use {BCE}."),
    "bce_logits": ("BCE-with-logits on probs", "The decoder ends with a sigmoid already: {BCE}."),
    "mse": ("MSE instead of BCE", "Score pixel probabilities by cross-entropy: {BCE}."),
    "recon_formula": ("reconstruction formula", "Your reconstruction term {finding}: use {BCE}."),
    "no_kl": ("no KL term", "Add kl_loss = {KL}."),
    "kl_sign": ("KL sign", "The KL is never negative: {KL}."),
    "kl_half": ("KL missing the 0.5", "Put 0.5 in front: {KL}."),
    "kl_mean": ("KL averaged (mean)", "Sum the KL as the BCE is: torch.sum, not torch.mean."),
    "kl_per_image": ("KL divided by batch size", "Sum the KL over images too: {KL}."),
    "kl_first_image": ("KL of first image only", "Sum over every image: {KL}."),
    "kl_no_mu2": ("KL without mu^2", "Put back the - mu^2 term: {KL}."),
    "kl_logvar2": ("KL: logvar^2 for exp(logvar)", "The variance is exp(logvar): {KL}."),
    "kl_std": ("KL: std for variance", "The variance is exp(logvar), not the std: {KL}."),
    "kl_one": ("KL missing the '1 +'", "Your KL is {kl:.2f} at the prior, not 0: put back '1 +'."),
    "kl_formula": ("KL formula", "Your KL {finding}: use {KL}."),
    "offset": ("constant added to loss", "Remove the constant {offset:+.3f} from the loss."),
}
