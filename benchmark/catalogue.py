"""The catalogue: every built-in dataset, model, explainer, metric and region protocol,
registered lazily.

Adding a component is one file in its package and one line here. Third-party packages
register under the entry-point groups named below (see README, "Plugins").
"""

from __future__ import annotations

from benchmark.registry import Registry

DATASETS = Registry("dataset", group="face_xai_bench.datasets")
MODELS = Registry("model", group="face_xai_bench.models")
EXPLAINERS = Registry("explainer", group="face_xai_bench.explainers")
METRICS = Registry("metric", group="face_xai_bench.metrics")
REGION_PROTOCOLS = Registry("region protocol", group="face_xai_bench.region_protocols")

REGISTRIES: dict[str, Registry] = {
    "datasets": DATASETS,
    "models": MODELS,
    "explainers": EXPLAINERS,
    "metrics": METRICS,
    "region_protocols": REGION_PROTOCOLS,
}

REGION_PROTOCOLS.register(
    "celebamask",
    "benchmark.data.protocols:CelebAMaskRegions",
    aliases=("celebamask_hq", "masks19"),
    summary="The 19 CelebAMask-HQ labels from the dataset's label maps (METHODS §1).",
)
REGION_PROTOCOLS.register(
    "landmark11",
    "benchmark.data.protocols:Landmark11Regions",
    aliases=("xaiface_patches",),
    summary="XAIface's 11 heuristic patches from 5 landmarks; overlapping masks.",
)

DATASETS.register(
    "synthetic_faces",
    "benchmark.data.synthetic:SyntheticFaces",
    aliases=("synthetic", "synth_faces"),
    summary="Procedurally rendered faces with 19-label maps and counterfactuals (embedded).",
)
DATASETS.register(
    "celeba",
    "benchmark.data.celeba:CelebA",
    aliases=("CelebA",),
    summary="CelebA from a local folder: official partition, attributes, 5 landmarks.",
)
DATASETS.register(
    "celebamask_hq",
    "benchmark.data.celebamask_hq:CelebAMaskHQ",
    aliases=("CelebAMask-HQ", "celebamaskhq"),
    summary="CelebAMask-HQ from a local folder: images, merged 19-label maps, attributes.",
)
DATASETS.register(
    "fairface",
    "benchmark.data.fairface:FairFace",
    aliases=("FairFace",),
    summary="FairFace from a local folder: gender, age bins, 7 races; detected landmarks.",
)
DATASETS.register(
    "rfw",
    "benchmark.data.rfw:RFW",
    aliases=("RFW",),
    summary="Racial Faces in the Wild from a local folder: 4 races, identities, pairs.",
)
DATASETS.register(
    "lfw",
    "benchmark.data.lfw:LFW",
    aliases=("LFW",),
    summary="Labeled Faces in the Wild from a local folder: identities and pairs.",
)
DATASETS.register(
    "image_folder",
    "benchmark.data.folder:ImageFolder",
    aliases=("folder", "generic_folder"),
    summary="Your own images + CSV of attributes; optional masks and landmarks.",
)

MODELS.register(
    "small_cnn",
    "benchmark.models.archs:small_cnn",
    aliases=("smallcnn", "cnn"),
    summary="Four conv blocks, trains in seconds on CPU at 64 px.",
)
MODELS.register(
    "small_embedding",
    "benchmark.models.archs:small_embedding",
    aliases=("embedding_cnn",),
    summary="small_cnn as a 128-d face embedding, trained on synthetic identities.",
)
MODELS.register(
    "resnet18",
    "benchmark.models.archs:resnet18",
    aliases=("resnet_18",),
    summary="torchvision ResNet-18 (random init, or torchvision weights from a local file).",
)
MODELS.register(
    "resnet50",
    "benchmark.models.archs:resnet50",
    aliases=("resnet_50",),
    summary="torchvision ResNet-50.",
)
MODELS.register(
    "vgg16",
    "benchmark.models.archs:vgg16",
    aliases=("vgg_16",),
    summary="torchvision VGG-16 with batch norm.",
)

EXPLAINERS.register(
    "gradcam",
    "explainers.gradcam:GradCAM",
    aliases=("grad_cam", "GradCAM"),
    summary="Grad-CAM (Selvaraju et al. 2017), captum's LayerGradCam at the model's target layer.",
)
EXPLAINERS.register(
    "integrated_gradients",
    "explainers.integrated_gradients:IntegratedGradients",
    aliases=("ig", "integrated-gradients", "IntegratedGradients"),
    summary="Integrated Gradients (Sundararajan et al. 2017), captum's, signed, black baseline.",
)
EXPLAINERS.register(
    "occlusion",
    "explainers.occlusion:Occlusion",
    aliases=("occ", "Occlusion"),
    summary="Occlusion (Zeiler & Fergus 2014), captum's: target-logit drop under a black window.",
)
EXPLAINERS.register(
    "rise",
    "explainers.rise:RISE",
    aliases=("RISE",),
    summary="RISE (Petsiuk et al. 2018): random smooth masks weighted by the target probability.",
)

EXPLAINERS.register(
    "gradcam_plusplus",
    "explainers.cams:GradCAMPlusPlus",
    aliases=("gradcam++", "grad_cam_plusplus", "GradCAMPlusPlus"),
    summary="Grad-CAM++ (Chattopadhay et al. 2018): positive gradients, closed-form alphas.",
)
EXPLAINERS.register(
    "scorecam",
    "explainers.cams:ScoreCAM",
    aliases=("score_cam", "ScoreCAM"),
    summary="Score-CAM (Wang et al. 2020): channels weighted by masked-image scores (softmax).",
)
EXPLAINERS.register(
    "hirescam",
    "explainers.cams:HiResCAM",
    aliases=("hires_cam", "HiResCAM"),
    summary="HiRes-CAM (Draelos & Carin 2020): ReLU of the summed gradient-times-activation.",
)
EXPLAINERS.register(
    "layercam",
    "explainers.cams:LayerCAM",
    aliases=("layer_cam", "LayerCAM"),
    summary="Layer-CAM (Jiang et al. 2021): activations weighted by their own positive gradients.",
)

EXPLAINERS.register(
    "minplus",
    "explainers.minplus:MinPlus",
    aliases=("MinPlus", "min_plus"),
    summary="MinPlus (Mery & Morris): Gaussian removal and reveal, single and greedy, averaged.",
)
EXPLAINERS.register(
    "avg",
    "explainers.minplus:AVG",
    aliases=("AVG",),
    summary="AVG (MinPlus's predecessor): the four maps smoothed and scaled each, then averaged.",
)
EXPLAINERS.register(
    "rise_gauss",
    "explainers.rise_gauss:RISEgauss",
    aliases=("RISEgauss", "rise-gauss"),
    summary="RISEgauss: RISE with masks of random Gaussian blobs instead of grid cells.",
)

EXPLAINERS.register(
    "rise_correlation",
    "explainers.rise_correlation:CorrelationRISE",
    aliases=("CorrelationRISE", "xaiface_rise", "corr_rise"),
    summary="XAIface's RISE: per-pixel correlation between mask value and score over masks.",
)

EXPLAINERS.register(
    "saliency",
    "explainers.gradients:Saliency",
    aliases=("Saliency", "vanilla_gradient"),
    summary="Saliency (Simonyan et al. 2014), captum's: |∂logit/∂x| summed over channels.",
)
EXPLAINERS.register(
    "smoothgrad",
    "explainers.gradients:SmoothGrad",
    aliases=("SmoothGrad", "smooth_grad"),
    summary="SmoothGrad (Smilkov et al. 2017), captum's NoiseTunnel: 25 copies, σ=0.15, seeded.",
)
EXPLAINERS.register(
    "input_x_gradient",
    "explainers.gradients:InputXGradient",
    aliases=("InputXGradient", "ixg", "gradient_x_input"),
    summary="Input × Gradient (Shrikumar et al. 2016), captum's, signed.",
)
EXPLAINERS.register(
    "deeplift",
    "explainers.gradients:DeepLift",
    aliases=("DeepLift", "deep_lift"),
    summary="DeepLIFT-Rescale (Shrikumar et al. 2017), captum's, black baseline, signed.",
)
EXPLAINERS.register(
    "guided_backprop",
    "explainers.guided:GuidedBackprop",
    aliases=("GuidedBackprop", "gbp"),
    summary="Guided Backpropagation (Springenberg et al. 2015), captum's, magnitude per channel.",
)
EXPLAINERS.register(
    "guided_gradcam",
    "explainers.guided:GuidedGradCAM",
    aliases=("GuidedGradCAM", "guided_grad_cam"),
    summary="Guided Grad-CAM (Selvaraju et al. 2017), captum's: |guided backprop| × Grad-CAM.",
)
EXPLAINERS.register(
    "lime",
    "explainers.superpixels:LIME",
    aliases=("LIME", "lime_map"),
    summary="LIME (Ribeiro et al. 2016) on SLIC superpixels, batched; map = superpixel weights.",
)
EXPLAINERS.register(
    "kernel_shap",
    "explainers.superpixels:KernelSHAP",
    aliases=("KernelSHAP", "kernelshap"),
    summary="KernelSHAP (Lundberg & Lee 2017) on SLIC superpixels, black baseline, batched.",
)
EXPLAINERS.register(
    "cis",
    "explainers.canonical_saliency:CanonicalImageSaliency",
    aliases=("CIS", "canonical_image_saliency"),
    summary="Canonical Image Saliency (John et al. 2021): occlusion on the canonical face grid.",
)
EXPLAINERS.register(
    "cms",
    "explainers.canonical_saliency:CanonicalModelSaliency",
    aliases=("CMS", "canonical_model_saliency"),
    summary="Canonical Model Saliency (John et al. 2021): mean CIS, reprojected on each face.",
)

METRICS.register(
    "ranking_position",
    "metrics.facex:RankingPosition",
    aliases=("facex", "rp", "facex_ranking"),
    summary="FaceX ranking position of the bias attribute's regions by IoR (Sarridis et al. 2024).",
)
METRICS.register(
    "pointing_game",
    "metrics.pointing:PointingGame",
    aliases=("pointing",),
    summary="Share of maps peaking inside the bias regions (Zhang et al. 2016).",
)
METRICS.register(
    "average_drop",
    "metrics.confidence:AverageDrop",
    aliases=("avg_drop", "average_drop_pct"),
    summary="Average Drop % of class confidence on the explanation image (Grad-CAM++, CSM).",
)
METRICS.register(
    "increase_in_confidence",
    "metrics.confidence:IncreaseInConfidence",
    aliases=("pct_increase", "increase"),
    summary="% of images whose explanation image raises class confidence (Grad-CAM++, CSM).",
)
METRICS.register(
    "bbox_ap",
    "metrics.bbox:BoxAP",
    aliases=("box_ap", "bbox"),
    summary="Pixel AP of the map against the bias-region or face box (seed 003 §3.4).",
)
METRICS.register(
    "win_percent",
    "metrics.confidence:WinPercent",
    aliases=("win", "win_pct"),
    summary="Win %: share of images where the explainer's explanation image wins (Grad-CAM++).",
)
METRICS.register(
    "gt_agreement",
    "metrics.ground_truth:GroundTruthAgreement",
    aliases=("ground_truth", "reliance_agreement"),
    summary="Spearman of region ranking vs true reliance from counterfactual renders (§9).",
)
METRICS.register(
    "deletion_auc",
    "metrics.deletion:DeletionAUC",
    aliases=("deletion",),
    summary="Deletion AUC: class probability as the most salient pixels are removed (RISE §4.1).",
)
METRICS.register(
    "insertion_auc",
    "metrics.deletion:InsertionAUC",
    aliases=("insertion",),
    summary="Insertion AUC: class probability as salient pixels return to a blurred image (RISE).",
)
METRICS.register(
    "model_randomisation",
    "metrics.sanity:ModelRandomisation",
    aliases=("sanity_check", "mprt", "model_randomization"),
    summary="Sanity check (Adebayo et al. 2018): Spearman of maps, trained vs randomised layers.",
)
METRICS.register(
    "explainer_stability",
    "metrics.stability:ExplainerStability",
    aliases=("stability", "seed_stability"),
    summary="Stability (MinPlus, Mery & Morris 2022): Spearman of maps across explainer seeds.",
)
EXPLAINERS.register(
    "random",
    "explainers.reference:RandomMap",
    aliases=("random_map", "noise"),
    summary="Reference row: seeded uniform noise, the chance level of every metric.",
)
EXPLAINERS.register(
    "oracle",
    "explainers.reference:OracleMap",
    aliases=("oracle_map", "ground_truth_map"),
    summary="Reference row: the scenario's bias-region mask, what a perfect map would show.",
)
METRICS.prefix(
    "quantus",
    "metrics.quantus_adapter:quantus_metric",
    summary="quantus:<Class>: any Quantus metric (Hedström et al. 2023) fed our batches.",
)
