"""Operations the networks are built from: upsampling, unpooling, RoI pooling, CRF."""
