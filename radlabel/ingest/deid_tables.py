"""The tables the de-identifier applies: PS3.15 Table E.1-1 plus what radlabel adds.

* Basic Profile column: every attribute and its action (D, Z, X, U and the
  conditional X/Z, X/D, X/Z/D, Z/D, X/Z/U*) comes from the ``dicom-anonymizer``
  package's transcription of Table E.1-1 (2026c), sequences included.
* Option columns (K keep, C clean; the table's retention options): that package
  has only the Basic Profile column, so the option columns for the attributes
  they touch are transcribed here.
* SAFE: the explicit allow-list of attributes that Table E.1-1 does not list
  but a usable image needs (pixel description, geometry, rescale, acquisition
  parameters, multi-frame functional groups, segmentation and RT structure).
  An attribute in neither the table nor this list is removed.
* SAFE_PRIVATE: the private attributes kept under Retain Safe Private
  (PS3.15 Table E.3.10-1 examples): (creator, element byte) -> name.
"""

from __future__ import annotations

from functools import lru_cache

from pydicom.datadict import keyword_for_tag

from radlabel.protocol.enum import DeidentificationOption as Option

_GROUPS = {"X_TAGS": "X", "Z_TAGS": "Z", "D_TAGS": "D", "U_TAGS": "U", "X_Z_TAGS": "X/Z", "X_D_TAGS": "X/D",
           "X_Z_D_TAGS": "X/Z/D", "Z_D_TAGS": "Z/D", "X_Z_U_STAR_TAGS": "X/Z/U*"}


@lru_cache(maxsize=1)
def basic_actions() -> dict[int, str]:
    """Tag -> Basic Profile action, as Table E.1-1 writes it (conditional actions kept as such)."""
    from dicomanonymizer.dicom_anonymization_databases import dicomfields_2026c as table

    actions: dict[int, str] = {}
    for name, action in _GROUPS.items():
        for tag in getattr(table, name):
            if len(tag) == 2:  # the masked-group entries (curves, overlays) are handled by group
                actions[(tag[0] << 16) | tag[1]] = action
    return actions


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Table E.1-1 option columns (K = keep, C = clean) for the attributes each option affects. radlabel adds the
# scanner model and software versions to Retain Device Identity: the table does not list them, but with the
# manufacturer they name a site's scanner (fleets are public), and labelling needs neither.
OPTION_ACTIONS: dict[Option, dict[str, str]] = {
    Option.RETAIN_DEVICE_IDENTITY: dict.fromkeys(_words("""
        StationName DeviceSerialNumber DeviceUID DeviceDescription DeviceLabel DetectorID GantryID GeneratorID
        PlateID CassetteID SourceSerialNumber TreatmentMachineName PerformedStationName PerformedStationAETitle
        ScheduledStationName ScheduledStationAETitle StationAETitle PerformedLocation ScheduledProcedureStepLocation
        SecondaryCaptureDeviceID UniqueDeviceIdentifier UDISequence ManufacturerDeviceIdentifier
        ManufacturerModelName SoftwareVersions
        """), "K"),
    Option.RETAIN_INSTITUTION_IDENTITY: dict.fromkeys(_words("""
        InstitutionName InstitutionAddress InstitutionalDepartmentName InstitutionCodeSequence
        InstitutionalDepartmentTypeCodeSequence
        """), "K"),
    Option.RETAIN_PATIENT_CHARACTERISTICS: dict.fromkeys(_words("""
        PatientAge PatientSex PatientSize PatientWeight EthnicGroup SmokingStatus PregnancyStatus
        PatientSexNeutered PatientBodyMassIndex PatientState SpecialNeeds MedicalAlerts Allergies
        """), "K") | dict.fromkeys(_words("AdditionalPatientHistory Occupation"), "C"),
    Option.CLEAN_DESCRIPTORS: dict.fromkeys(_words("""
        StudyDescription SeriesDescription ProtocolName ImageComments AdditionalPatientHistory
        PerformedProcedureStepDescription RequestedProcedureDescription ScheduledProcedureStepDescription
        DerivationDescription AcquisitionDeviceProcessingDescription ContrastBolusAgent AcquisitionComments
        ReasonForStudy RequestedProcedureComments StudyComments CommentsOnThePerformedProcedureStep
        ReasonForTheRequestedProcedure VisitComments LabelText
        """), "C"),
    Option.CLEAN_STRUCTURED_CONTENT: {"ContentSequence": "C", "AcquisitionContextSequence": "C"},
    Option.CLEAN_GRAPHICS: {"GraphicAnnotationSequence": "C"},
}

# The scanner's model and software (not in Table E.1-1): removed, or a dummy where the IOD needs them (Enhanced
# General Equipment, Type 1), unless Retain Device Identity keeps them.
DEVICE_MODEL = _words("ManufacturerModelName SoftwareVersions")

# Dates and times of a device, not of the patient: kept only under Retain Full Dates (the patient's
# offset must not reach them: a shifted calibration date next to the true one reveals the offset).
DEVICE_TEMPORAL = _words("""
    DateOfLastCalibration TimeOfLastCalibration DateOfLastDetectorCalibration TimeOfLastDetectorCalibration
    DateOfManufacture DateOfInstallation CalibrationDate CalibrationTime DateOfSecondaryCapture
    TimeOfSecondaryCapture
    """)
# Identifying in themselves whatever the longitudinal options say.
NEVER_SHIFTED = _words("PatientBirthDate PatientBirthTime")

# Attributes Table E.1-1 does not list that radlabel keeps (the allow-list). Free text is not here; the short
# text kept here (Manufacturer, kernel names) is cleaned of the source's identifying strings.
SAFE = _words("""
    SpecificCharacterSet ImageType SOPClassUID Modality Manufacturer
    SeriesNumber InstanceNumber AcquisitionNumber
    PatientOrientation PatientPosition Laterality ImageLaterality FrameLaterality BodyPartExamined ViewPosition
    PositionReferenceIndicator SliceLocation ImagePositionPatient ImageOrientationPatient PixelSpacing
    SliceThickness SpacingBetweenSlices ImagerPixelSpacing NominalScannedPixelSpacing PixelSpacingCalibrationType
    PixelSpacingCalibrationDescription EstimatedRadiographicMagnificationFactor
    SamplesPerPixel PhotometricInterpretation Rows Columns BitsAllocated BitsStored HighBit PixelRepresentation
    PlanarConfiguration PixelAspectRatio SmallestImagePixelValue LargestImagePixelValue PixelPaddingValue
    PixelPaddingRangeLimit NumberOfFrames FrameIncrementPointer FrameTime FrameTimeVector ActualFrameDuration
    PixelData FloatPixelData DoubleFloatPixelData ExtendedOffsetTable ExtendedOffsetTableLengths
    RedPaletteColorLookupTableDescriptor GreenPaletteColorLookupTableDescriptor
    BluePaletteColorLookupTableDescriptor RedPaletteColorLookupTableData GreenPaletteColorLookupTableData
    BluePaletteColorLookupTableData SegmentedRedPaletteColorLookupTableData
    SegmentedGreenPaletteColorLookupTableData SegmentedBluePaletteColorLookupTableData PixelPresentation
    RescaleIntercept RescaleSlope RescaleType ModalityLUTSequence LUTDescriptor LUTData ModalityLUTType
    LUTExplanation LUTLabel VOILUTSequence VOILUTFunction WindowCenter WindowWidth WindowCenterWidthExplanation
    PresentationLUTShape PresentationIntentType BurnedInAnnotation RecognizableVisualFeatures
    LossyImageCompression LossyImageCompressionRatio LossyImageCompressionMethod QualityControlImage
    PatientIdentityRemoved LongitudinalTemporalInformationModified DeidentificationMethod
    DeidentificationMethodCodeSequence ContentQualification VolumetricProperties VolumeBasedCalculationTechnique
    ComplexImageComponent AcquisitionContrast PixelValueTransformationSequence RealWorldValueMappingSequence
    RealWorldValueFirstValueMapped RealWorldValueLastValueMapped RealWorldValueIntercept RealWorldValueSlope
    RealWorldValueLUTData MeasurementUnitsCodeSequence
    CodeValue CodingSchemeDesignator CodingSchemeVersion CodeMeaning LongCodeValue URNCodeValue MappingResource
    ContextIdentifier ContextUID CodingSchemeIdentificationSequence CodingSchemeUID CodingSchemeName
    CodingSchemeResponsibleOrganization AnatomicRegionSequence AnatomicRegionModifierSequence
    PrimaryAnatomicStructureSequence ProcedureCodeSequence PerformedProtocolCodeSequence
    PurposeOfReferenceCodeSequence DerivationCodeSequence DerivationImageSequence ReferencedSOPClassUID
    ReferencedFrameNumber ReferencedSegmentNumber ReferencedSeriesSequence ReferencedInstanceSequence
    ReferencedSOPSequence ReferencedFrameOfReferenceSequence SourceImageEvidenceSequence
    KVP ExposureTime XRayTubeCurrent Exposure ExposureInuAs ExposureInmAs FilterType GeneratorPower FocalSpots
    ConvolutionKernel ReconstructionDiameter DataCollectionDiameter DataCollectionCenterPatient
    ReconstructionTargetCenterPatient DistanceSourceToDetector DistanceSourceToPatient GantryDetectorTilt
    TableHeight RotationDirection RevolutionTime SingleCollimationWidth TotalCollimationWidth TableSpeed
    TableFeedPerRotation SpiralPitchFactor CTDIvol CTDIPhantomTypeCodeSequence ExposureModulationType
    EstimatedDoseSaving ScanOptions CalciumScoringMassFactorDevice ReconstructionAlgorithm ReconstructionAngle
    ReconstructionFieldOfView ReconstructionPixelSpacing ImageFilter WaterEquivalentDiameter
    CTImageFrameTypeSequence CTAcquisitionTypeSequence AcquisitionType TubeAngle ConstantVolumeFlag
    FluoroscopyFlag CTAcquisitionDetailsSequence TableFeedPerRotation CTTableDynamicsSequence TableHeadTiltAngle
    TableHorizontalRotationAngle TableCradleTiltAngle CTPositionSequence ReconstructionTargetCenterPatient
    TablePosition DataCollectionCenterPatient CTGeometrySequence CTReconstructionSequence CTExposureSequence
    CTXRayDetailsSequence CTAdditionalXRaySourceSequence IrradiationEventIdentificationSequence
    ExposureTimeInms XRayTubeCurrentInmA ExposureInmAs CTDIvol CTPixelValueRescaleSequence
    ScanningSequence SequenceVariant ScanOptions MRAcquisitionType SequenceName AngioFlag RepetitionTime
    EchoTime InversionTime NumberOfAverages ImagingFrequency ImagedNucleus EchoNumbers MagneticFieldStrength
    NumberOfPhaseEncodingSteps EchoTrainLength PercentSampling PercentPhaseFieldOfView PixelBandwidth
    ReceiveCoilName TransmitCoilName AcquisitionMatrix InPlanePhaseEncodingDirection FlipAngle
    VariableFlipAngleFlag SAR dBdt TriggerTime NominalInterval HeartRate CardiacNumberOfImages
    TriggerWindow LowRRValue HighRRValue IntervalsAcquired IntervalsRejected
    PulseSequenceName EchoPulseSequence MultipleSpinEcho MultiPlanarExcitation PhaseContrast
    TimeOfFlightContrast Spoiling SteadyStatePulseSequence EchoPlanarPulseSequence TagAngleFirstAxis
    MagnetizationTransfer T2Preparation BloodSignalNulling SaturationRecovery SpectrallySelectedSuppression
    SpectrallySelectedExcitation SpatialPresaturation Tagging OversamplingPhase TagSpacingFirstDimension
    GeometryOfKSpaceTraversal SegmentedKSpaceTraversal RectilinearPhaseEncodeReordering TagThickness
    PartialFourierDirection CardiacSynchronizationTechnique ReceiveCoilType QuadratureReceiveCoil
    MultiCoilDefinitionSequence MultiCoilConfiguration MultiCoilElementName MultiCoilElementUsed
    TransmitCoilType ResonantNucleus KSpaceFiltering MRAcquisitionFrequencyEncodingSteps
    MRAcquisitionPhaseEncodingStepsInPlane MRAcquisitionPhaseEncodingStepsOutOfPlane NumberOfKSpaceTrajectories
    CoverageOfKSpace SpectralWidth ChemicalShiftReference VolumeLocalizationTechnique
    ApplicableSafetyStandardAgency ApplicableSafetyStandardDescription OperatingModeSequence
    OperatingModeType OperatingMode SpecificAbsorptionRateDefinition GradientOutputType
    SpecificAbsorptionRateValue GradientOutput FlowCompensation FlowCompensationDirection Decoupling
    DiffusionBValue DiffusionGradientOrientation DiffusionDirectionality DiffusionGradientDirectionSequence
    DiffusionAnisotropyType DiffusionBMatrixSequence ParallelAcquisition ParallelAcquisitionTechnique
    ParallelReductionFactorInPlane ParallelReductionFactorOutOfPlane ParallelReductionFactorSecondInPlane
    InversionRecovery ComplexImageComponent PartialFourier EffectiveEchoTime AcquisitionDuration
    MRImageFrameTypeSequence MRTimingAndRelatedParametersSequence MRFOVGeometrySequence MREchoSequence
    MRModifierSequence MRImagingModifierSequence MRReceiveCoilSequence MRTransmitCoilSequence
    MRDiffusionSequence MRAveragesSequence MRSpatialSaturationSequence MRMetaboliteMapSequence
    MRVelocityEncodingSequence MRArterialSpinLabelingSequence VelocityEncodingDirection
    VelocityEncodingMinimumValue VelocityEncodingMaximumValue WaterReferencedPhaseCorrection
    MRSpectroscopyAcquisitionType RespiratoryMotionCompensationTechnique BulkMotionCompensationTechnique
    RFEchoTrainLength GradientEchoTrainLength TemporalRangeType NominalRespiratoryTriggerDelayTime
    RespiratoryIntervalTime RespiratorySynchronizationSequence CardiacSynchronizationSequence
    NominalCardiacTriggerDelayTime ContrastBolusUsageSequence ContrastBolusAgentNumber
    ContrastBolusAgentAdministered ContrastBolusAgentDetected ContrastBolusAgentPhase ContrastBolusAgentSequence
    ContrastBolusAdministrationRouteSequence ContrastBolusIngredientCodeSequence
    ContrastBolusIngredientConcentration ContrastBolusVolume ContrastFlowRate ContrastFlowDuration
    ContrastBolusRoute ContrastBolusTotalDose ContrastBolusIngredient
    SharedFunctionalGroupsSequence PerFrameFunctionalGroupsSequence PixelMeasuresSequence FrameContentSequence
    FrameAcquisitionNumber StackID InStackPositionNumber TemporalPositionIndex DimensionIndexValues
    FrameAcquisitionDuration CardiacCyclePosition RespiratoryCyclePosition PlanePositionSequence
    PlaneOrientationSequence FrameAnatomySequence FrameVOILUTSequence FrameType DerivationImageSequence
    DimensionOrganizationSequence DimensionIndexSequence DimensionIndexPointer FunctionalGroupPointer
    DimensionDescriptionLabel DimensionOrganizationType DimensionOrganizationUID ConcatenationFrameOffsetNumber
    InConcatenationNumber InConcatenationTotalNumber RepresentativeFrameNumber ReferencedRawDataSequence
    UnassignedSharedConvertedAttributesSequence PixelIntensityRelationship PixelIntensityRelationshipSign
    SegmentationType SegmentationFractionalType MaximumFractionalValue SegmentSequence SegmentNumber
    SegmentAlgorithmType SegmentedPropertyCategoryCodeSequence SegmentedPropertyTypeCodeSequence
    SegmentedPropertyTypeModifierCodeSequence SegmentIdentificationSequence RecommendedDisplayCIELabValue
    RecommendedDisplayGrayscaleValue TrackingID TrackingUID ContentLabel
    StructureSetROISequence ROINumber ROIGenerationAlgorithm ROIContourSequence ROIDisplayColor ContourSequence
    ContourGeometricType NumberOfContourPoints ContourData ContourNumber ContourImageSequence
    RTROIObservationsSequence ObservationNumber ReferencedROINumber RTROIInterpretedType
    ROIPhysicalPropertiesSequence ROIPhysicalProperty ROIPhysicalPropertyValue RTReferencedStudySequence
    RTReferencedSeriesSequence ReferencedStructureSetSequence ROIVolume
    SequenceOfUltrasoundRegions RegionSpatialFormat RegionDataType RegionFlags RegionLocationMinX0
    RegionLocationMinY0 RegionLocationMaxX1 RegionLocationMaxY1 ReferencePixelX0 ReferencePixelY0
    PhysicalUnitsXDirection PhysicalUnitsYDirection ReferencePixelPhysicalValueX ReferencePixelPhysicalValueY
    PhysicalDeltaX PhysicalDeltaY TransducerFrequency TransducerType PulseRepetitionFrequency
    UltrasoundColorDataPresent StageNumber NumberOfStages ViewNumber NumberOfViewsInStage DepthOfScanField
    MechanicalIndex BoneThermalIndex CranialThermalIndex SoftTissueThermalIndex
    ConversionType DetectorType DetectorConfiguration Sensitivity ExposureIndex TargetExposureIndex
    DeviationIndex PhosphorType PlateType CassetteOrientation CassetteSize BorderDensity ExposuresOnPlate
    FieldOfViewShape FieldOfViewDimensions CollimatorShape CollimatorLeftVerticalEdge CollimatorRightVerticalEdge
    CollimatorUpperHorizontalEdge CollimatorLowerHorizontalEdge ImageAndFluoroscopyAreaDoseProduct
    ExaminedBodyThickness EntranceDoseInmGy RelativeXRayExposure AnodeTargetMaterial FilterMaterial
    CompressionForce BodyPartThickness Grid PositionerType PositionerPrimaryAngle PositionerSecondaryAngle
    EnergyWindowVector NumberOfEnergyWindows DetectorVector NumberOfDetectors Units DecayCorrection
    CorrectedImage CountsSource SeriesType FrameReferenceTime DecayFactor DoseCalibrationFactor
    ScatterFractionFactor DeadTimeFactor
    NumberOfWaveformChannels NumberOfWaveformSamples SamplingFrequency WaveformSequence ChannelDefinitionSequence
    ChannelSourceSequence ChannelSensitivity ChannelSensitivityUnitsSequence ChannelSensitivityCorrectionFactor
    ChannelBaseline ChannelSampleSkew WaveformBitsAllocated WaveformBitsStored WaveformSampleInterpretation
    WaveformOriginality WaveformData MultiplexGroupTimeOffset TriggerTimeOffset TriggerSamplePosition
    FilterLowFrequency FilterHighFrequency NotchFilterFrequency
    DoseUnits DoseType DoseSummationType DoseGridScaling GridFrameOffsetVector TissueHeterogeneityCorrection
    ReferencedRTPlanSequence ReferencedFractionGroupSequence ReferencedFractionGroupNumber RTPlanGeometry
    ValueType ConceptNameCodeSequence ConceptCodeSequence RelationshipType ContinuityOfContent CompletionFlag
    VerificationFlag MeasuredValueSequence NumericValue FloatingPointValue ReferencedContentItemIdentifier
    TemporalRangeType ReferencedSamplePositions ReferencedTimeOffsets ReferencedWaveformChannels GraphicData
    GraphicType ContentTemplateSequence TemplateIdentifier CurrentRequestedProcedureEvidenceSequence
    PertinentOtherEvidenceSequence ReferencedBeamSequence ReferencedBeamNumber RTPlanRelationship
    """)

# Patient characteristics kept under Retain Patient Characteristics only in bands (band width, in the attribute's
# unit: years, kg, m): an exact age, weight or height singles a patient out among a protocol's series, a band does
# not; the readers' and the models' use of them (a cohort's age and size) needs no more.
GENERALISED: dict[str, float] = {"PatientAge": 5, "PatientWeight": 5, "PatientSize": 0.05}

# Not listed by Table E.1-1 but free content inside structured content: a dummy value keeps the item valid.
DUMMIED = _words("TextValue PersonName Date Time DateTime")

# Table E.1-1 has these as X/D or X/Z/D, and some IOD has them as Type 2: emptied, not removed.
TYPE2_SOMEWHERE = _words("OperatorsName RTPlanDate RTPlanTime")

# Free text radlabel keeps (needed by the IOD or the readers) only after scrubbing identifying strings.
CLEANED = _words("SegmentLabel SegmentAlgorithmName ContentDescription")

# Safe private attributes (PS3.15 Table E.3.10-1 examples): (private creator, element byte) -> meaning.
SAFE_PRIVATE: dict[tuple[int, str, int], str] = {
    (0x0019, "SIEMENS MR HEADER", 0x08): "CSA Image Header Type",
    (0x0019, "SIEMENS MR HEADER", 0x0C): "B_value",
    (0x0019, "SIEMENS MR HEADER", 0x0D): "DiffusionDirectionality",
    (0x0019, "SIEMENS MR HEADER", 0x0E): "DiffusionGradientDirection",
    (0x0019, "SIEMENS MR HEADER", 0x27): "B_matrix",
    (0x0043, "GEMS_PARM_01", 0x39): "slop_int_6... slop_int_9 (b value)",
    (0x2001, "Philips Imaging DD 001", 0x03): "Diffusion B-Factor",
    (0x2001, "Philips Imaging DD 001", 0x04): "Diffusion Direction",
    (0x7053, "Philips PET Private Group", 0x00): "SUV Factor",
    (0x7053, "Philips PET Private Group", 0x09): "Activity Concentration Scale Factor",
}

# Attributes that can tie an output series to a named source (with outside knowledge): the linkage measure.
QUASI_IDENTIFIERS = (
    "StudyDate", "StudyTime", "SeriesDate", "SeriesTime", "AcquisitionDate", "AcquisitionTime", "ContentDate",
    "ContentTime", "AcquisitionDateTime", "StationName", "DeviceSerialNumber", "DeviceUID", "InstitutionName",
    "InstitutionalDepartmentName", "Manufacturer", "ManufacturerModelName", "SoftwareVersions", "PatientSex",
    "PatientAge", "PatientSize", "PatientWeight", "EthnicGroup", "BodyPartExamined", "ProtocolName",
    "StudyDescription", "SeriesDescription",
)
# Under Modified Dates these are moved by the patient's secret offset (whole days plus 1-23 h): without the key
# they match nothing in the source, so they link nothing and stay out of the linkage signature.
SHIFTED_QUASI_IDENTIFIERS = frozenset(QUASI_IDENTIFIERS[:9])


@lru_cache(maxsize=4096)
def keyword(tag: int) -> str:
    return keyword_for_tag(tag) or ""
